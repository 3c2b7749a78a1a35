"""Labelled image folders held in memory: Imagenette's splits decoded once, fixed subsets of them, and the
app's eval transform applied to them. Evaluation (:mod:`app.evaluate`), the model card and training's validation
all read images through here, so they measure what Classify does."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from app.data import IMAGENETTE_CLASSES, eval_transform

STORE_SIZE = 224


@dataclass
class TensorImages:
    """N x 3 x S x S uint8 images with integer labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())


def _decode(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (STORE_SIZE, STORE_SIZE):
            im = im.resize((STORE_SIZE, STORE_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def list_split(root: str | Path, split: str) -> tuple[list[Path], list[int]]:
    """Files and labels of an Imagenette split (label = index of the wnid in sorted order)."""
    root = Path(root) / split
    if not root.is_dir():
        raise FileNotFoundError(f"Imagenette split not found: {root} (expected <root>/{{train,val}}/<wnid>/*.JPEG)")
    wnids = sorted(IMAGENETTE_CLASSES)
    files, labels = [], []
    for label, wnid in enumerate(wnids):
        for p in sorted((root / wnid).glob("*")):
            if p.suffix.lower() in (".jpeg", ".jpg", ".png"):
                files.append(p)
                labels.append(label)
    if not files:
        raise FileNotFoundError(f"no images under {root}")
    return files, labels


def _files_digest(files: list[Path]) -> str:
    """A short fingerprint of a split's files (class folder, name and size of each): the cache key."""
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.parent.name}/{p.name}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:12]


def load_split(root: str | Path, split: str, cache_dir: str | Path | None = None, progress: bool = True) -> TensorImages:
    """Decode a split once (cached as .npy in ``cache_dir``, keyed by the split's file names and sizes)."""
    files, labels = list_split(root, split)
    name = f"imagenette_{split}_{len(files)}_{STORE_SIZE}_{_files_digest(files)}.npy"
    cache = Path(cache_dir) / name if cache_dir else None
    if cache is not None and cache.is_file():
        arr = np.load(cache, mmap_mode=None)
    else:
        arr = np.empty((len(files), 3, STORE_SIZE, STORE_SIZE), dtype=np.uint8)
        it = range(len(files))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"decoding {split}", unit="img")
        for i in it:
            arr[i] = _decode(files[i])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            # one temporary file per process: data-parallel ranks may decode at the same time
            tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, cache)
    return TensorImages(torch.from_numpy(arr), torch.tensor(labels, dtype=torch.long))


def _shuffled_per_class(labels: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Each class's indices in a seeded random order (one generator, classes in sorted order)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)])
    return out


def val_half(labels: torch.Tensor, half: int, seed: int = 0) -> torch.Tensor:
    """Indices of one fixed half (0 or 1) of the val set, split per class with a seeded shuffle: half 0 ("A")
    is the accuracy predictor's data, half 1 ("B") the app's on-demand measurement set is drawn from."""
    return torch.cat([idx[half::2] for idx in _shuffled_per_class(labels, seed)]).sort().values


def class_balanced_indices(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """``per_class`` seeded random indices of every class, in round-robin class order."""
    return torch.stack([idx[:per_class] for idx in _shuffled_per_class(labels, seed)], 1).flatten()


def center_batch(images: torch.Tensor, r: int, mean, std) -> torch.Tensor:
    """The app's eval transform (:class:`app.data.EvalTransform`, exactly what Classify applies) on stored uint8
    images (N x 3 x S x S): for Imagenette, whose files are stored at 224 x 224, the same pixels as classifying
    the file itself."""
    tf = eval_transform(r, mean, std)
    return torch.stack([tf(Image.fromarray(img.permute(1, 2, 0).numpy())) for img in images])


def recalibrate_on_training_images(subnet: torch.nn.Module, train: TensorImages, r: int, mean, std,
                                   n: int = 2000, seed: int = 0, batch: int = 100) -> int:
    """OFA's BN re-estimation (``set_running_statistics``) of ``subnet`` on ``n`` training images
    drawn with ``seed``, centre-cropped at resolution ``r``; returns the number of images used."""
    from app.calibrate import recalibrate_bn

    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return recalibrate_bn(subnet, (center_batch(train.images[idx[i : i + batch]], r, mean, std) for i in range(0, len(idx), batch)))
