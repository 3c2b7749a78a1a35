"""What the Explore and Compare pages show about a config: metric tiles, trade-off points, measurements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import streamlit as st

from app import predictors as P
from app.evaluate import MEASURE_DIR, labelled_images
from app.evaluate import measure_accuracy as _measure
from app.predictors.encoding import encode
from app.presets import specialised
from app.space import SubnetConfig

ACCURACY_AXES = ("Bundled supernet (Imagenette, predicted)", "OFA ImageNet (val, calibrated)", "OFA ImageNet (holdout, raw)")
SAMPLED = 300


@dataclass(frozen=True)
class Tile:
    title: str
    text: str
    source: str
    help: str


@st.cache_resource
def _targets() -> tuple:
    return tuple(P.hardware_targets())


def targets():
    return list(_targets())


def _fmt(m: P.Metric, fmt: str) -> str:
    return "n/a" if m.value is None else fmt.format(m.value)


def tiles(cfg: SubnetConfig, hw: str, card) -> list[Tile]:
    p = P.predict(cfg, hw, card)
    acc_title = "Accuracy (Imagenette)" if card.num_classes == 10 else "Accuracy (this supernet)"
    out = [
        Tile(acc_title, _fmt(p.accuracy_supernet, "{:.1f}%"), p.accuracy_supernet.source.split(" (")[0],
             f"{p.accuracy_supernet.source}. {p.accuracy_supernet.note}"),
        Tile("ImageNet top-1 (OFA)", _fmt(p.accuracy_imagenet_val, "{:.1f}%"), "OFA predictor, calibrated to val",
             f"{p.accuracy_imagenet_val.source}; {p.accuracy_imagenet_val.note}. Raw OFA prediction (10K holdout from "
             f"ImageNet train, runs above val): {_fmt(p.accuracy_imagenet_holdout, '{:.1f}%')}. Describes OFA's official "
             "w1.2 supernet, not the bundled one."),
        Tile("Latency", _fmt(p.latency, "{:.1f} ms"), _kind_label(p.latency), f"{p.latency.source}. {p.latency.note}"),
        Tile("Energy", _fmt(p.energy, "{:.2f} mJ"), "model, Horowitz 2014", f"{p.energy.source}. {p.energy.note}. "
             f"Carbon: {p.carbon_per_1000.value:.2g} g CO2e per 1,000 inferences ({p.carbon_per_1000.source})."),
        Tile("MACs", _fmt(p.macs, "{:.0f} M"), "counted, OFA's rules", "Multiply-accumulates at this resolution, with this supernet's classifier head."),
        Tile("Params", _fmt(p.params, "{:.2f} M"), "counted, OFA's rules", "Parameters of the extracted subnet (with this supernet's classifier head)."),
    ]
    if p.latency.note:
        st.caption(f"Latency: {p.latency.note}.")
    return out


def _kind_label(m: P.Metric) -> str:
    short = m.source.split(",")[0].split(" (")[0]
    return f"{short} · {m.kind}"


@st.cache_data(max_entries=32, show_spinner=False)
def _sampled(hw: str, sha: str | None, width: float, classes: int) -> pd.DataFrame:
    """Predictions for a fixed sample of random subnets (seeded) plus OFA's specialised ones."""
    import random

    rng = random.Random(0)
    cfgs = [SubnetConfig.random(rng) for _ in range(SAMPLED)]
    spec = [p for p in specialised()]
    allc = cfgs + [p.config for p in spec] + [SubnetConfig.largest(224), SubnetConfig.smallest(128)]
    b = P.predict_batch(encode(allc), hw, sha, width, classes)
    df = pd.DataFrame({k: v for k, v in b.items()})
    df["cfg"] = [c.to_compact() for c in allc]
    df["group"] = ["sampled subnets"] * len(cfgs) + ["OFA specialised (published)"] * len(spec) + ["sampled subnets"] * 2
    df["name"] = ["random subnet"] * len(cfgs) + [p.name for p in spec] + ["largest", "smallest"]
    return df


def tradeoff_points(cfg: SubnetConfig, hw: str, axis: str, pins: list[SubnetConfig]) -> tuple[pd.DataFrame, str, str]:
    from app.ui import resources

    card = resources.supernet().card
    df = _sampled(hw, card.sha256 or None, card.width_mult, card.num_classes).copy()
    extra = [(cfg, "current subnet", "current")] + [(c, "pinned", f"pin {i + 1}") for i, c in enumerate(pins)]
    found = st.session_state.get("_search_result")
    if found is not None:
        extra.append((found, "search result", "search result"))
    b = P.predict_batch(encode([c for c, _, _ in extra]), hw, card.sha256 or None, card.width_mult, card.num_classes)
    more = pd.DataFrame({k: v for k, v in b.items()})
    more["cfg"] = [c.to_compact() for c, _, _ in extra]
    more["group"] = [g for _, g, _ in extra]
    more["name"] = [n for _, _, n in extra]
    df = pd.concat([df, more], ignore_index=True)
    col = {ACCURACY_AXES[0]: "accuracy_supernet", ACCURACY_AXES[1]: "accuracy_imagenet_val", ACCURACY_AXES[2]: "accuracy_imagenet_holdout"}[axis]
    if df[col].isna().all():
        st.info("No accuracy predictor is fitted for this supernet's weights yet; showing OFA's calibrated ImageNet prediction.")
        col = "accuracy_imagenet_val"
        axis = ACCURACY_AXES[1]
    df = df.rename(columns={"latency_ms": "x", col: "y"})[["x", "y", "group", "name", "cfg"]].dropna()
    target = next(t for t in targets() if t.name == hw)
    return df, f"latency on {target.label} (ms)", f"{axis} top-1 (%)"


def summary_row(cfg: SubnetConfig, hw: str, card) -> dict:
    p = P.predict(cfg, hw, card)
    return {
        "config": cfg.to_compact(),
        "accuracy (supernet) %": p.accuracy_supernet.value,
        "ImageNet val % (OFA, calibrated)": p.accuracy_imagenet_val.value,
        "latency ms": p.latency.value,
        "energy mJ": p.energy.value,
        "MACs (M)": p.macs.value,
        "params (M)": p.params.value,
    }


def summary_sources(hw: str) -> str:
    target = next(t for t in targets() if t.name == hw)
    return (f"Latency: {target.source}. Energy: model, Horowitz ISSCC 2014 operation energies. ImageNet accuracy: OFA's "
            "predictor calibrated to published val top-1. MACs/params: counted by OFA's rules.")


def measurement_set_size() -> int:
    from app.ui import resources

    card = resources.supernet().card
    return len(labelled_images(MEASURE_DIR, card)) if MEASURE_DIR.is_dir() else 0


def measure_accuracy(net, cfg: SubnetConfig, progress: Callable[[float], None]) -> float:
    return _measure(net, cfg, MEASURE_DIR, progress=progress)
