"""Bundle the app's on-demand accuracy measurement set: ``assets/measure/<wnid>_<name>.jpg``.

    python scripts/bundle_measure_set.py [--data ../shared/data/imagenette] [--per-class 30] [--seed 2]

``--per-class`` Imagenette val images of every class, drawn (seeded) from val half B
(:func:`app.datasets.val_half`), copied byte for byte. Half A is the accuracy
predictor's data, so the measurement the app offers never reuses an image the predictor
was fitted on. Replaces the folder's previous contents.
"""

from __future__ import annotations

import argparse
import shutil

import torch

from app.evaluate import MEASURE_DIR
from app.paths import ROOT
from app.datasets import class_balanced_indices, list_split, val_half


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/imagenette"))
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    paths, labels = list_split(args.data, "val")
    labels_t = torch.tensor(labels)
    half_b = val_half(labels_t, 1)
    picks = half_b[class_balanced_indices(labels_t[half_b], args.per_class, args.seed)]
    chosen = [paths[i] for i in picks.tolist()]
    if MEASURE_DIR.is_dir():
        shutil.rmtree(MEASURE_DIR)
    MEASURE_DIR.mkdir(parents=True)
    for p in sorted(chosen):
        shutil.copyfile(p, MEASURE_DIR / f"{p.parent.name}_{p.stem}.jpg")
    print(f"{len(chosen)} images ({args.per_class} per class, val half B, seed {args.seed}) -> {MEASURE_DIR}")


if __name__ == "__main__":
    main()
