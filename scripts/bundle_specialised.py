"""Bundle OFA's published specialised MobileNetV3 subnets as presets: pretrained/ofa_specialised.json.

    python scripts/bundle_specialised.py [../shared/reference/ofa/specialized]

Reads each folder's net.config (static network) and run.config (image size); keeps
the MobileNetV3 ones (the ProxylessNAS-space nets are a different search space).
Source: han-cai/files ofa/ofa_specialized (OFA, MIT).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from app.paths import PRETRAINED, ROOT
from app.space import MAX_DEPTH, RESOLUTION_CHOICES, SubnetConfig
from app.weights import atomic_write_text

NAME = re.compile(r"^(?P<device>.+?)_(?:lat-|gpu\d+-)?(?P<lat>[\d.]+)(?P<unit>ms|M)_top1-(?P<top1>[\d.]+)_finetune-(?P<ft>\d+)$|^(?P<device2>flops)-(?P<lat2>[\d.]+)(?P<unit2>M)_top1-(?P<top12>[\d.]+)_finetune-(?P<ft2>\d+)$")


def parse_net(net: dict, image_size: int) -> SubnetConfig:
    """ks / e / d of a static OFA MobileNetV3 net.config (first block excluded)."""
    blocks = [b["mobile_inverted_conv"] for b in net["blocks"][1:]]
    stages: list[list[dict]] = []
    for b in blocks:
        if not stages or b["out_channels"] != stages[-1][-1]["out_channels"]:
            stages.append([])
        stages[-1].append(b)
    if len(stages) != 5:
        raise ValueError(f"expected 5 stages, found {len(stages)}")
    ks, e, d = [3] * 20, [3] * 20, []
    for s, blks in enumerate(stages):
        d.append(len(blks))
        for j, b in enumerate(blks):
            ks[s * MAX_DEPTH + j] = int(b["kernel_size"])
            e[s * MAX_DEPTH + j] = int(b["expand_ratio"])
    r = min(RESOLUTION_CHOICES, key=lambda v: abs(v - image_size))
    return SubnetConfig(tuple(ks), tuple(e), tuple(d), r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?", default=str(ROOT.parent / "shared/reference/ofa/specialized"),
                    help="OFA's ofa_specialized folder (default: %(default)s)")
    src = Path(ap.parse_args().src)
    out = []
    for folder in sorted(src.iterdir()):
        net = json.loads((folder / "net.config").read_text())
        if net.get("name") != "MobileNetV3":
            continue
        run = json.loads((folder / "run.config").read_text())
        match = NAME.match(folder.name)
        if not match:
            raise SystemExit(f"unexpected folder name {folder.name}")
        g = match.groupdict()
        m = {k: g[k] if g[k] is not None else g[k + "2"] for k in ("device", "lat", "unit", "top1", "ft")}
        size = int(run["image_size"])
        cfg = parse_net(net, size)
        width = 1.2 if net["first_conv"]["out_channels"] == 24 else 1.0
        out.append({
            "name": folder.name,
            "device": m["device"],
            "published_latency_ms": float(m["lat"]) if m["unit"] == "ms" else None,
            "published_mflops": float(m["lat"]) if m["unit"] == "M" else None,
            "published_top1": float(m["top1"]),
            "finetune_epochs": int(m["ft"]),
            "width_mult": width,
            "image_size": size,
            "in_resolution_range": size in RESOLUTION_CHOICES,
            "config": cfg.to_compact(),
        })
    doc = {
        "source": "OFA published specialised subnets, han-cai/files ofa/ofa_specialized (Cai et al., ICLR 2020; MIT). "
                  "Latency and ImageNet top-1 as published (folder names); top-1 after 25 or 75 epochs of fine-tuning.",
        "note": "config.r is the published image size clamped to this space's 128-224 range when outside it (see in_resolution_range).",
        "subnets": out,
    }
    atomic_write_text(PRETRAINED / "ofa_specialised.json", json.dumps(doc, indent=1) + "\n")
    print(f"{len(out)} MobileNetV3 subnets -> pretrained/ofa_specialised.json")


if __name__ == "__main__":
    main()
