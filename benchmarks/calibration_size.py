"""How many images the interactive BN re-estimation needs: time against accuracy.

    python benchmarks/calibration_size.py [--sizes 10,30,100] [--r 224] [--data ../shared/data/imagenette]

For the largest and the smallest subnet, re-estimates BN on the first n bundled
calibration images (herding order, one batch, as the app does) for each n, and
prints the time taken and top-1 on the full Imagenette val set beside OFA's 2,000-image
re-estimation (from ``pretrained/model_card_rows.jsonl`` when measured for these weights,
else measured here). Run on an idle machine.
"""

from __future__ import annotations

import argparse
import json

from common import ROOT, header, median_time, table

from app.calibrate import clear_statistics_cache, recalibrate_fast
from app.evaluate import top1_on_tensors
from app.space import SubnetConfig
from app.train.dataset import load_split, recalibrate_on_training_images
from app.weights import load_supernet

SUBNETS = {"largest (d4 e6 k7)": SubnetConfig.uniform(7, 6, 4), "smallest (d2 e3 k3)": SubnetConfig.uniform(3, 3, 2)}


def bn2000(net, cfg: SubnetConfig, name: str, train, val) -> float:
    rows_path = ROOT / "pretrained" / "model_card_rows.jsonl"
    if rows_path.is_file():
        for row in map(json.loads, rows_path.read_text("utf-8").splitlines()):
            if row.get("sha256") == net.card.sha256 and row["subnet"] == name and row["r"] == cfg.r:
                return row["top1_bn2000"]
    sub = net.extract(cfg)
    recalibrate_on_training_images(sub, train, cfg.r, net.card.mean, net.card.std, n=2000)
    return top1_on_tensors(sub, val.images, val.labels, net.card.mean, net.card.std)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,30,100")
    ap.add_argument("--r", type=int, default=224)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/imagenette"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    net = load_supernet()
    cache = ROOT / "runs" / "cache"
    train = load_split(args.data, "train", cache, progress=False)
    val = load_split(args.data, "val", cache, progress=False)
    rows = []
    for name, base in SUBNETS.items():
        cfg = base.replace(r=args.r)
        ref = bn2000(net, cfg, name, train, val)
        for n in sizes:
            def once():
                clear_statistics_cache()
                sub = net.extract(cfg)
                recalibrate_fast(sub, net.card, n=n, chunk=n)
                return sub

            seconds = median_time(once, repeat=3)
            acc = top1_on_tensors(once(), val.images, val.labels, net.card.mean, net.card.std)
            rows.append([name, f"r={args.r}", str(n), f"{seconds:.2f} s", f"{acc:.1f}%", f"{ref:.1f}%", f"{acc - ref:+.1f} pp"])
            print(rows[-1], flush=True)
    print(header(f"BN re-estimation: images vs time and top-1 (full val, {len(val)} images)"))
    print(table(["subnet", "resolution", "images", "time (median of 3)", "top-1", "top-1, OFA's 2,000 images", "difference"], rows))


if __name__ == "__main__":
    main()
