"""How many images the interactive BN re-estimation needs: time against accuracy.

    python benchmarks/calibration_size.py [--sizes 10,30,100] [--r 224] [--subnets largest,smallest] [--data ../shared/data/imagenette]
    python benchmarks/calibration_size.py --model-card

For the named model-card subnets (default: the largest and the smallest), re-estimates BN on the first n bundled
calibration images (herding order, one batch, as the app does) for each n, and
prints the time taken and top-1 on the full Imagenette val set beside OFA's 2,000-image
re-estimation (from ``pretrained/model_card_rows.jsonl`` when measured for these weights,
else measured here; ``--reference-seeds 0,1,2,3`` averages it over several draws of 2,000 images, whose spread
shows how noisy the reference itself is). ``--model-card`` instead times the app's own choice of image count
(:func:`app.calibrate.fast_calibration_size`) on every cell of the model card, beside the
cell's measured top-1 (fast path and OFA's 2,000 images). Run on an idle machine.
"""

from __future__ import annotations

import argparse
import json

from common import ROOT, header, median_time, table

from app.calibrate import clear_statistics_cache, fast_calibration_size, recalibrate_fast
from app.evaluate import MODEL_CARD_SUBNETS, top1_on_tensors
from app.paths import PRETRAINED
from app.space import SubnetConfig
from app.datasets import load_split, recalibrate_on_training_images
from app.weights import load_supernet


def model_card_subnet(name: str) -> str:
    """The model card's name for ``name``: a full name or an unambiguous start of it ("largest", "d3e4k3")."""
    found = [full for full in MODEL_CARD_SUBNETS if full.replace(" ", "").startswith(name.replace(" ", ""))]
    if len(found) != 1:
        raise SystemExit(f"--subnets: {name!r} names {len(found)} subnets; the model card's are {', '.join(MODEL_CARD_SUBNETS)}")
    return found[0]


def bn2000(net, cfg: SubnetConfig, name: str, train, val, seeds: list[int]) -> float:
    """Top-1 with OFA's re-estimation on 2,000 training images, averaged over the draws ``seeds`` (the model card's
    figure, seed 0, is reused when measured for these weights)."""
    rows_path = PRETRAINED / "model_card_rows.jsonl"
    if seeds == [0] and rows_path.is_file():
        for row in map(json.loads, rows_path.read_text("utf-8").splitlines()):
            if row.get("sha256") == net.card.sha256 and row["subnet"] == name and row["r"] == cfg.r:
                return row["top1_bn2000"]
    accs = []
    for seed in seeds:
        sub = net.extract(cfg)
        recalibrate_on_training_images(sub, train, cfg.r, net.card.mean, net.card.std, n=2000, seed=seed)
        accs.append(top1_on_tensors(sub, val.images, val.labels, net.card.mean, net.card.std))
    if len(seeds) > 1:
        print(f"{name} r={cfg.r}: OFA's 2,000 images, draws {seeds}: " + " / ".join(f"{a:.2f}" for a in accs)
              + f"% (mean {sum(accs) / len(accs):.2f}, spread {max(accs) - min(accs):.2f} pp)", flush=True)
    return sum(accs) / len(accs)


def model_card_cells(net) -> None:
    """Time the fast path with its default image count on every model-card cell measured for these weights."""
    rows_path = PRETRAINED / "model_card_rows.jsonl"
    cells = [r for r in map(json.loads, rows_path.read_text("utf-8").splitlines()) if r.get("sha256") == net.card.sha256]
    if not cells:
        raise SystemExit("no model-card cells measured for these weights: run scripts/evaluate_supernet.py first")
    rows, worst = [], 0.0
    for cell in sorted(cells, key=lambda c: (c["subnet"], c["r"])):
        cfg = SubnetConfig.parse(cell["config"])

        def once():
            clear_statistics_cache()
            recalibrate_fast(net.extract(cfg), net.card)

        seconds = median_time(once, repeat=3)
        worst = max(worst, seconds)
        n = fast_calibration_size(cfg, net.card.width_mult, net.card.num_classes)
        rows.append([cell["subnet"], f"r={cfg.r}", str(n), f"{seconds:.2f} s", f"{cell['top1_fast']:.1f}%",
                     f"{cell['top1_bn2000']:.1f}%", f"{cell['top1_fast'] - cell['top1_bn2000']:+.2f} pp"])
        print(rows[-1], flush=True)
    print(header("BN re-estimation with the app's image count, every model-card cell"))
    print(table(["subnet", "resolution", "images", "time (median of 3)", "top-1 (fast, model card)",
                 "top-1, OFA's 2,000 images", "difference"], rows))
    print(f"slowest: {worst:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,30,100")
    ap.add_argument("--r", type=int, default=224)
    ap.add_argument("--subnets", default="largest,smallest", help="model-card subnets, e.g. largest,d3e4k3")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/imagenette"))
    ap.add_argument("--reference-seeds", default="0",
                    help="draws of the 2,000 reference images to average, e.g. 0,1,2,3 (the model card uses draw 0)")
    ap.add_argument("--model-card", action="store_true", help="time the app's default image count on every model-card cell")
    args = ap.parse_args()
    if args.model_card:
        model_card_cells(load_supernet())
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.reference_seeds.split(",")]
    net = load_supernet()
    cache = ROOT / "runs" / "cache"
    train = load_split(args.data, "train", cache, progress=False)
    val = load_split(args.data, "val", cache, progress=False)
    rows = []
    for name in map(model_card_subnet, args.subnets.split(",")):
        cfg = MODEL_CARD_SUBNETS[name].replace(r=args.r)
        ref = bn2000(net, cfg, name, train, val, seeds)
        for n in sizes:
            def once():
                clear_statistics_cache()
                sub = net.extract(cfg)
                recalibrate_fast(sub, net.card, n=n, chunk=n)
                return sub

            seconds = median_time(once, repeat=3)
            acc = top1_on_tensors(once(), val.images, val.labels, net.card.mean, net.card.std)
            rows.append([name, f"r={args.r}", str(n), f"{seconds:.2f} s", f"{acc:.2f}%", f"{ref:.2f}%", f"{acc - ref:+.2f} pp"])
            print(rows[-1], flush=True)
    print(header(f"BN re-estimation: images vs time and top-1 (full val, {len(val)} images)"))
    reference = "top-1, OFA's 2,000 images" + (f" (mean of {len(seeds)} draws)" if len(seeds) > 1 else "")
    print(table(["subnet", "resolution", "images", "time (median of 3)", "top-1", reference, "difference"], rows))


if __name__ == "__main__":
    main()
