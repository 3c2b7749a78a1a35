"""Measure int8 against fp32 on Imagenette val: the model card's table and the int8 accuracy predictor's dataset.

    python scripts/measure_int8.py card       [--data ../shared/data/imagenette]   # -> pretrained/int8/card.jsonl
    python scripts/measure_int8.py predictor  [--n 40]                             # -> pretrained/int8/dataset_bn250.csv
    python scripts/measure_int8.py remedies                                        # -> pretrained/int8/remedies.jsonl
    python scripts/measure_int8.py report                                          # all three as markdown tables

``card``: the model card's six subnets at r = 128 / 160 / 224, BN re-estimated on 2,000 training images (seed 0,
the card's method), top-1 on the full val set (3,925 images) of the PyTorch subnet (fp32; its ONNX file gives the same
outputs to 1e-5) and of its int8 file (:func:`app.quantize.onnx_int8`: ranges from the fast BN path's bundled images), and both files' sizes.

``predictor``: ``--n`` configs of the fp32 accuracy predictor's dataset (this supernet's rows, a seeded sample),
measured as that dataset was (BN on 250 class-balanced training images, val half A): fp32 (PyTorch) and int8 top-1.

``remedies``: the usual int8 remedies against plain static QDQ (every layer int8, per-channel weights, ranges from the
fast BN path's images; the winner, the first convolution and the classifier in fp32, became the app's recipe) on the largest subnet at r = 224 and the two subnets with the largest drops at r = 128, full val set,
the card's BN statistics: per-tensor weights; the first convolution and the classifier kept in fp32; every
squeeze-excite kept in fp32; 250 class-balanced training images for the ranges.

Rows are appended as they are measured, so a killed run resumes where it stopped. Accuracy only: no timing here.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path

from app.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()

import torch  # noqa: E402

from app import quantize  # noqa: E402
from app.calibrate import recalibrate_bn  # noqa: E402
from app.datasets import center_batch, class_balanced_indices, load_split, recalibrate_on_training_images, val_half  # noqa: E402
from app.evaluate import MODEL_CARD_SUBNETS  # noqa: E402
from app.paths import PRETRAINED, ROOT  # noqa: E402
from app.predictors.accuracy import SUPERNET_DATASET  # noqa: E402
from app.space import SubnetConfig  # noqa: E402
from app.weights import load_supernet  # noqa: E402

OUT = PRETRAINED / "int8"
CARD_ROWS = OUT / "card.jsonl"
REMEDY_ROWS = OUT / "remedies.jsonl"
REMEDY_SUBNETS = (("largest (d4 e6 k7)", 224), ("d3 e6 k5", 128), ("d4 e4 k5", 128))
DATASET = OUT / "dataset_bn250.csv"
FIELDS = ["config", "r", "top1_fp32", "top1_int8", "top1_fp32_dataset", "val_images", "supernet_sha256", "seconds"]


@torch.inference_mode()
def top1(model, x: torch.Tensor, labels: torch.Tensor, batch: int = 32) -> float:
    """Top-1 (%) of ``model`` (a PyTorch or an ONNX subnet) on preprocessed images ``x``."""
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i : i + batch]).argmax(1) == labels[i : i + batch]).sum())
    return 100.0 * correct / len(x)


def measure_card(args) -> None:
    net = load_supernet(args.weights)
    card = net.card
    cache = ROOT / "runs" / "cache"
    val = load_split(args.data, "val", cache, progress=False)
    train = load_split(args.data, "train", cache, progress=False)
    done = set()
    if CARD_ROWS.is_file():
        for line in CARD_ROWS.read_text().splitlines():
            row = json.loads(line)
            if row["supernet_sha256"] == card.sha256:
                done.add((row["subnet"], row["r"]))
    OUT.mkdir(parents=True, exist_ok=True)
    for r in (224, 160, 128):
        todo = [(name, base) for name, base in MODEL_CARD_SUBNETS.items() if (name, r) not in done]
        if not todo:
            continue
        x = center_batch(val.images, r, card.mean, card.std)  # once per resolution: the app's eval transform
        for name, base in todo:
            t = time.time()
            cfg = SubnetConfig(ks=base.ks, e=base.e, d=base.d, r=r)
            sub = net.extract(cfg)
            recalibrate_on_training_images(sub, train, r, card.mean, card.std, n=2000, seed=0)
            fp32_bytes = quantize.onnx_fp32(sub)
            int8_bytes = quantize.onnx_int8(sub, card)
            int8 = quantize.OnnxSubnet(int8_bytes, cfg, "int8", threads=args.threads)
            folded = sub.fold_batchnorm()
            row = {"subnet": name, "r": r, "config": cfg.to_compact(), "val_images": len(val),
                   "top1_fp32": round(top1(folded, x, val.labels), 2),
                   "top1_int8": round(top1(int8, x, val.labels), 2),
                   "size_fp32_mb": round(len(fp32_bytes) / 1e6, 2), "size_int8_mb": round(len(int8_bytes) / 1e6, 2),
                   "calibration_images": len(quantize.calibration_images(cfg, card)),
                   "supernet_sha256": card.sha256, "seconds": round(time.time() - t, 1)}
            with CARD_ROWS.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name} r={r}: fp32 {row['top1_fp32']} int8 {row['top1_int8']} ({row['top1_int8'] - row['top1_fp32']:+.2f}), "
                  f"{row['size_fp32_mb']} -> {row['size_int8_mb']} MB, {row['seconds']} s", flush=True)


def _remedies(fp32: bytes, default_images: torch.Tensor, balanced_images: torch.Tensor) -> dict[str, bytes]:
    import onnx

    names = [n.name for n in onnx.load_from_string(fp32).graph.node]
    ends = [n for n in names if n in ("/stem/conv/Conv", "/classifier/Gemm")]
    se = [n for n in names if "/se/" in n]
    q = quantize.quantize_int8
    assert set(ends) == set(quantize.KEEP_FP32)
    return {
        "every layer int8 (per-channel, fast-path images)": q(fp32, default_images),
        "per-tensor weights": q(fp32, default_images, per_channel=False),
        "first conv + classifier in fp32 (the app's recipe)": q(fp32, default_images, exclude=tuple(ends)),
        "squeeze-excite in fp32": q(fp32, default_images, exclude=tuple(se)),
        "250 calibration images": q(fp32, balanced_images),
    }


def measure_remedies(args) -> None:
    net = load_supernet(args.weights)
    card = net.card
    cache = ROOT / "runs" / "cache"
    val = load_split(args.data, "val", cache, progress=False)
    train = load_split(args.data, "train", cache, progress=False)
    done = set()
    if REMEDY_ROWS.is_file():
        for line in REMEDY_ROWS.read_text().splitlines():
            row = json.loads(line)
            if row["supernet_sha256"] == card.sha256:
                done.add((row["subnet"], row["r"], row["remedy"]))
    for name, r in REMEDY_SUBNETS:
        base = MODEL_CARD_SUBNETS[name]
        cfg = SubnetConfig(ks=base.ks, e=base.e, d=base.d, r=r)
        sub = net.extract(cfg)
        recalibrate_on_training_images(sub, train, r, card.mean, card.std, n=2000, seed=0)
        x = center_batch(val.images, r, card.mean, card.std)
        fp32 = quantize.onnx_fp32(sub)
        balanced = center_batch(train.images[class_balanced_indices(train.labels, 25, seed=args.seed)], r, card.mean, card.std)
        top_fp32 = round(top1(sub.fold_batchnorm(), x, val.labels), 2)
        for remedy, data in _remedies(fp32, quantize.calibration_images(cfg, card), balanced).items():
            if (name, r, remedy) in done:
                continue
            t = time.time()
            model = quantize.OnnxSubnet(data, cfg, "int8", threads=args.threads)
            row = {"subnet": name, "r": r, "remedy": remedy, "top1_fp32": top_fp32,
                   "top1_int8": round(top1(model, x, val.labels), 2), "size_int8_mb": round(len(data) / 1e6, 2),
                   "val_images": len(val), "supernet_sha256": card.sha256, "seconds": round(time.time() - t, 1)}
            with REMEDY_ROWS.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name} r={r} {remedy}: int8 {row['top1_int8']} ({row['top1_int8'] - top_fp32:+.2f})", flush=True)


def fp32_heldout_configs(card) -> list[str]:
    """The configs the bundled fp32 accuracy predictor kept out of its fit (split seed 0)."""
    from app.predictors.int8 import fp32_heldout
    return fp32_heldout(card)


def measure_predictor(args) -> None:
    net = load_supernet(args.weights)
    card = net.card
    cache = ROOT / "runs" / "cache"
    val = load_split(args.data, "val", cache, progress=False)
    half = val_half(val.labels, 0)
    images, labels = val.images[half], val.labels[half]
    train = load_split(args.data, "train", cache, progress=False)
    bn_set = train.images[class_balanced_indices(train.labels, 25)]
    with SUPERNET_DATASET.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["supernet_sha256"] == card.sha256]
    if not rows:
        raise SystemExit("no rows of the fp32 predictor's dataset for these weights")
    # every config the fp32 predictor held out (its published split): int8 predictions are then checked end to end
    # on configs neither fit saw; the rest a seeded sample of its training configs
    held = set(fp32_heldout_configs(card))
    others = [r for r in rows if r["config"] not in held]
    picked = [r for r in rows if r["config"] in held]
    picked += random.Random(args.seed).sample(others, max(0, min(args.n - len(picked), len(others))))
    done = set()
    if DATASET.is_file():
        with DATASET.open(newline="") as f:
            done = {r["config"] for r in csv.DictReader(f) if r["supernet_sha256"] == card.sha256}
    OUT.mkdir(parents=True, exist_ok=True)
    new_file = not DATASET.is_file()
    todo = [r for r in picked if r["config"] not in done]
    print(f"{len(done)} measured, {len(todo)} to go", flush=True)
    with DATASET.open("a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new_file:
            w.writeheader()
        for i, row in enumerate(todo):
            t = time.time()
            cfg = SubnetConfig.from_compact(row["config"])
            sub = net.extract(cfg)
            recalibrate_bn(sub, [center_batch(bn_set, cfg.r, card.mean, card.std).contiguous(memory_format=torch.channels_last)])
            x = center_batch(images, cfg.r, card.mean, card.std)
            fp32 = top1(sub.fold_batchnorm(), x, labels)
            int8 = quantize.OnnxSubnet(quantize.onnx_int8(sub, card), cfg, "int8", threads=args.threads)
            q = top1(int8, x, labels)
            w.writerow({"config": cfg.to_compact(), "r": cfg.r, "top1_fp32": f"{fp32:.3f}", "top1_int8": f"{q:.3f}",
                        "top1_fp32_dataset": row["top1_half_a"], "val_images": len(images), "supernet_sha256": card.sha256,
                        "seconds": f"{time.time() - t:.1f}"})
            f.flush()
            print(f"[{i + 1}/{len(todo)}] {cfg.to_compact()} fp32 {fp32:.2f} (dataset {row['top1_half_a']}) int8 {q:.2f} "
                  f"({q - fp32:+.2f}) {time.time() - t:.0f} s", flush=True)


def report(args) -> None:
    """The card's table (fp32 / int8 top-1 and sizes per subnet and resolution) and the correction's figures, as markdown."""
    from app.predictors.hardware import bundled_card
    from app.predictors.int8 import int8_correction

    card = bundled_card()
    rows = [json.loads(line) for line in CARD_ROWS.read_text().splitlines()] if CARD_ROWS.is_file() else []
    rows = [r for r in rows if r["supernet_sha256"] == card.sha256]
    order = list(MODEL_CARD_SUBNETS)
    rs = sorted({r["r"] for r in rows})
    by = {(r["subnet"], r["r"]): r for r in rows}
    print("| subnet | " + " | ".join(f"r={r}: fp32 / int8 (Δ)" for r in rs) + " | size fp32 → int8 (r=224) |")
    print("|---|" + "---|" * len(rs) + "---|")
    for name in order:
        cells = []
        for r in rs:
            row = by.get((name, r))
            cells.append("—" if row is None else f"{row['top1_fp32']:.2f} / {row['top1_int8']:.2f} ({row['top1_int8'] - row['top1_fp32']:+.2f})")
        big = by.get((name, 224))
        size = "—" if big is None else f"{big['size_fp32_mb']:.1f} → {big['size_int8_mb']:.1f} MB ({big['size_fp32_mb'] / big['size_int8_mb']:.2f}×)"
        print(f"| {name} | " + " | ".join(cells) + f" | {size} |")
    drops = [r["top1_int8"] - r["top1_fp32"] for r in rows]
    if drops:
        print(f"\n{len(rows)} cells: int8 − fp32 from {min(drops):+.2f} to {max(drops):+.2f} pp, mean {sum(drops) / len(drops):+.2f}")
    corr = int8_correction(card.sha256)
    if corr is not None:
        print(f"\nint8 correction: {corr.source}; predicting the mean drop: leave-one-out RMSE {corr.loo_rmse_pp_mean_only:.2f} pp")
    remedies = [json.loads(line) for line in REMEDY_ROWS.read_text().splitlines()] if REMEDY_ROWS.is_file() else []
    remedies = [r for r in remedies if r["supernet_sha256"] == card.sha256]
    if remedies:
        cols = list(dict.fromkeys((r["subnet"], r["r"]) for r in remedies))
        by = {(r["subnet"], r["r"], r["remedy"]): r for r in remedies}
        print("\n| int8 − fp32 (pp) | " + " | ".join(f"{n} @{r} (fp32 {by[next(k for k in by if k[:2] == (n, r))]['top1_fp32']:.2f})"
                                                  for n, r in cols) + " |")
        print("|---|" + "---|" * len(cols))
        for remedy in dict.fromkeys(r["remedy"] for r in remedies):
            cells = [by.get((n, r, remedy)) for n, r in cols]
            print(f"| {remedy} | " + " | ".join("—" if c is None else f"{c['top1_int8'] - c['top1_fp32']:+.2f}" for c in cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("card", "predictor", "remedies", "report"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/imagenette"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"card": measure_card, "predictor": measure_predictor, "remedies": measure_remedies, "report": report}[args.what](args)


if __name__ == "__main__":
    main()
