"""Named subnet presets: largest, smallest and OFA's published specialised subnets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.space import SubnetConfig

from app.paths import PRETRAINED

SPECIALISED_FILE = PRETRAINED / "ofa_specialised.json"


@dataclass(frozen=True)
class Preset:
    name: str
    config: SubnetConfig
    description: str
    device: str | None = None
    published_latency_ms: float | None = None
    published_top1: float | None = None  # ImageNet top-1 after fine-tuning, as published
    finetune_epochs: int | None = None
    width_mult: float | None = None  # supernet the published net came from
    image_size: int | None = None  # published image size (config.r is clamped to 128-224)


@lru_cache(maxsize=1)
def specialised() -> tuple[Preset, ...]:
    """OFA's published specialised MobileNetV3 subnets (bundled; see scripts/bundle_specialised.py)."""
    doc = json.loads(SPECIALISED_FILE.read_text("utf-8"))
    out = []
    for s in doc["subnets"]:
        lat = f"{s['published_latency_ms']:g} ms" if s["published_latency_ms"] is not None else f"{s['published_mflops']:g} MFLOPs"
        out.append(Preset(
            name=s["name"],
            config=SubnetConfig.from_compact(s["config"]),
            description=f"OFA specialised for {s['device']} ({lat}, ImageNet top-1 {s['published_top1']}% after "
                        f"{s['finetune_epochs']} fine-tuning epochs; w{s['width_mult']} supernet, {s['image_size']} px)",
            device=s["device"],
            published_latency_ms=s["published_latency_ms"],
            published_top1=s["published_top1"],
            finetune_epochs=s["finetune_epochs"],
            width_mult=s["width_mult"],
            image_size=s["image_size"],
        ))
    return tuple(out)


def presets() -> dict[str, Preset]:
    """All presets by name: ``largest``, ``smallest`` and every specialised subnet's folder name."""
    base = {
        "largest": Preset("largest", SubnetConfig.largest(224), "largest subnet: depth 4, expand 6, kernel 7, 224 px"),
        "smallest": Preset("smallest", SubnetConfig.smallest(128), "smallest subnet: depth 2, expand 3, kernel 3, 128 px"),
    }
    base.update({p.name: p for p in specialised()})
    return base


def resolve(name_or_config) -> SubnetConfig:
    """A preset name, a JSON file path, JSON text, a dict or a compact string -> SubnetConfig."""
    if isinstance(name_or_config, str):
        text = name_or_config.strip()
        table = presets()
        if text in table:
            return table[text].config
        path = Path(text)
        if not text.startswith("{") and text.endswith(".json"):
            if not path.is_file():
                raise ValueError(f"config: no such file {text}")
            try:
                return SubnetConfig.parse(json.loads(path.read_text("utf-8")))
            except json.JSONDecodeError as exc:
                raise ValueError(f"config file {path.name}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
            except UnicodeDecodeError:
                raise ValueError(f"config file {path.name}: not UTF-8 text") from None
        if not text.startswith("{") and not text.startswith("r") :
            raise ValueError(f"config: {text[:60]!r} is not a preset ({', '.join(list(table)[:3])}, ...), a .json file, JSON or a compact string")
    return SubnetConfig.parse(name_or_config)
