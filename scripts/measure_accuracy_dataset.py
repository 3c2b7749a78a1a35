"""Measure the bundled supernet's Imagenette top-1 for many sampled configs: the accuracy predictor's dataset.

    python scripts/measure_accuracy_dataset.py [--n 560] [--data ../shared/data/imagenette] [--bn-images 250]

Configs are stratified over size and resolution: for every resolution 128..224 (step 4)
an equal share, each drawn with a per-config "size level" so small, middle and large
subnets all appear. Each config is extracted, its BN statistics re-estimated on a fixed
class-balanced set of ``--bn-images`` training images (seed 0, one batch), and its top-1
measured on one fixed half of the val set ("half A": a seeded half, stratified by class).
The other half is kept for reporting accuracy elsewhere. Rows are appended to
``pretrained/predictors/imagenette_acc_dataset_bn250.csv`` (the predictor's dataset; another
``--bn-images`` needs its own ``--out``) as they are measured, so a killed run resumes where it stopped.

Why 250 images: two random 250-image sets differ by 0.19 pp per config, two 30-image sets
by 0.65 pp, which is about a predictor's whole error (the first predictor's dataset, in git
history before this file, used 30).
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

from app.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()

import torch  # noqa: E402

from app.calibrate import recalibrate_bn  # noqa: E402
from app.costs import count_macs, count_params  # noqa: E402
from app.evaluate import top1_on_tensors  # noqa: E402
from app.paths import ROOT  # noqa: E402
from app.predictors.accuracy import SUPERNET_DATASET  # noqa: E402
from app.space import DEPTH_CHOICES, EXPAND_CHOICES, KERNEL_CHOICES, RESOLUTION_CHOICES, SubnetConfig  # noqa: E402
from app.datasets import center_batch, class_balanced_indices, load_split, val_half  # noqa: E402
from app.weights import load_supernet  # noqa: E402

FIELDS = ["config", "r", "macs_m", "params_m", "top1_half_a", "val_images", "supernet_sha256", "seconds"]


def stratified_configs(n: int, seed: int) -> list[SubnetConfig]:
    """``n`` configs: resolutions cycled evenly, each config skewed towards a random size level."""
    rng = random.Random(seed)
    out: list[SubnetConfig] = []
    seen: set[str] = set()
    res = list(RESOLUTION_CHOICES)
    while len(out) < n:
        r = res[len(out) % len(res)]
        level = rng.random()  # 0 = small, 1 = large

        def pick(choices):
            weights = [(1 - level) ** 2 + 0.05 if i == 0 else level**2 + 0.05 if i == len(choices) - 1 else 0.5 - abs(level - 0.5) + 0.05
                       for i in range(len(choices))]
            return rng.choices(list(choices), weights)[0]

        cfg = SubnetConfig(ks=tuple(pick(KERNEL_CHOICES) for _ in range(20)), e=tuple(pick(EXPAND_CHOICES) for _ in range(20)),
                           d=tuple(pick(DEPTH_CHOICES) for _ in range(5)), r=r)
        key = cfg.to_compact()
        if key not in seen:
            seen.add(key)
            out.append(cfg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/imagenette"))
    ap.add_argument("--n", type=int, default=560)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bn-images", type=int, default=250, help="re-estimate BN on this many class-balanced training images")
    ap.add_argument("--weights", default=None, help="supernet to measure (default: the bundled one)")
    ap.add_argument("--out", type=Path, default=None, help="CSV to append to (default: the predictor's dataset; required with another --bn-images)")
    args = ap.parse_args()
    if args.bn_images <= 0 or args.bn_images % 10:
        raise SystemExit("--bn-images must be a multiple of 10 (class-balanced over 10 classes)")
    if args.out is None and args.bn_images != 250:
        raise SystemExit(f"--bn-images {args.bn_images}: name its own --out (the default file holds the 250-image target)")
    torch.set_num_threads(args.threads)
    net = load_supernet(args.weights)
    card = net.card
    val = load_split(args.data, "val", ROOT / "runs" / "cache", progress=False)
    half = val_half(val.labels, 0)
    images, labels = val.images[half], val.labels[half]
    out = args.out or SUPERNET_DATASET
    train = load_split(args.data, "train", ROOT / "runs" / "cache", progress=False)
    bn_set = train.images[class_balanced_indices(train.labels, args.bn_images // 10)]
    done: set[str] = set()
    if out.is_file():
        with out.open(newline="") as f:
            for row in csv.DictReader(f):
                if row["supernet_sha256"] == card.sha256:
                    done.add(row["config"])
    configs = [c for c in stratified_configs(args.n, args.seed) if c.to_compact() not in done]
    print(f"{len(done)} already measured, {len(configs)} to go, {len(images)} val images each", flush=True)
    new_file = not out.is_file()
    with out.open("a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new_file:
            w.writeheader()
        t0 = time.time()
        for i, cfg in enumerate(configs):
            t = time.time()
            sub = net.extract(cfg)
            recalibrate_bn(sub, [center_batch(bn_set, cfg.r, card.mean, card.std).contiguous(memory_format=torch.channels_last)])
            acc = top1_on_tensors(sub, images, labels, card.mean, card.std)
            macs = count_macs(cfg, card.width_mult, card.num_classes)
            params = count_params(cfg, card.width_mult, card.num_classes)
            w.writerow({"config": cfg.to_compact(), "r": cfg.r, "macs_m": f"{macs / 1e6:.2f}", "params_m": f"{params / 1e6:.3f}",
                        "top1_half_a": f"{acc:.3f}", "val_images": len(images), "supernet_sha256": card.sha256,
                        "seconds": f"{time.time() - t:.2f}"})
            f.flush()
            eta = (time.time() - t0) / (i + 1) * (len(configs) - i - 1) / 60
            print(f"[{i + 1}/{len(configs)}] {cfg.to_compact()} top1={acc:.2f} ({time.time() - t:.1f}s, eta {eta:.0f} min)", flush=True)


if __name__ == "__main__":
    main()
