"""How good the ImageNet teacher's soft targets are on training crops, by the resolution it sees them at.

    python benchmarks/teacher_crops.py [--n 2000] [--resolutions 128,160,192,224,260] [--teachers efficientnet-lite0,efficientnet-lite2]

Draws ``n`` class-balanced training images and one random-resized crop + flip each (the training augmentation,
``app.train.dataset.augment_batch``, same boxes at every resolution), and runs each ``--teachers`` teacher
(restricted to the 10 Imagenette classes) on the crop at each resolution: top-1 against the
label, the mean probability it gives the label (T = 1, softmax over the 10 classes: the soft target's mass on the
truth) and the time per image. The recipes' ``teacher_resolution`` shows the teacher the crop at 224 px while the
student trains at 128-192 px. Needs ``pip install -r requirements-train.txt``.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import ROOT, header, table

from app.datasets import class_balanced_indices, load_split
from app.train.dataset import augment_batch
from app.train.teacher import load_teacher
from app.weights import load_supernet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imagenette"))
    ap.add_argument("--n", type=int, default=2000, help="training images (class-balanced)")
    ap.add_argument("--resolutions", default="128,160,192,224,260")
    ap.add_argument("--teachers", default="efficientnet-lite0,efficientnet-lite2")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]

    card = load_supernet().card
    train = load_split(args.data, "train", ROOT / "runs" / "cache", progress=False)
    idx = class_balanced_indices(train.labels, args.n // len(card.class_ids), seed=args.seed)
    rows = []
    for name in args.teachers.split(","):
        teacher = load_teacher(name, card.class_ids, card.mean, card.std).to(memory_format=torch.channels_last)
        for r in resolutions:
            correct, p_true, seconds = 0, 0.0, 0.0
            gen = torch.Generator()
            for start in range(0, len(idx), 100):
                batch = idx[start : start + 100]
                gen.manual_seed(args.seed * 1_000_003 + start)  # the same boxes and flips at every resolution
                x = augment_batch(train.images[batch], r, card.mean, card.std, gen).contiguous(memory_format=torch.channels_last)
                y = train.labels[batch]
                t = time.perf_counter()
                logits = teacher(x)
                seconds += time.perf_counter() - t
                correct += int((logits.argmax(1) == y).sum())
                p_true += float(logits.softmax(1).gather(1, y[:, None]).sum())
            rows.append([name, r, f"{100 * correct / len(idx):.1f}%", f"{p_true / len(idx):.3f}",
                         f"{1000 * seconds / len(idx):.2f} ms"])
    print(header(f"ImageNet teachers on {len(idx)} random training crops (crop scale 0.35-1, flips)"))
    print(table(["teacher", "sees the crop at", "top-1 (10 classes)", "mean p(label)", "forward time / image"], rows))


if __name__ == "__main__":
    main()
