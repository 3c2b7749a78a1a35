"""Imagenette held in memory as uint8 tensors, with batched augmentation on tensors.

Decoding 13k JPEGs every epoch would cost more than the forward passes of a small
subnet on a 2-core CPU, so images are decoded once (cached as ``.npy`` beside the run)
and augmented per batch: random-resized crops via ``roi_align`` (one call per batch),
horizontal flips, then normalisation; optionally CutMix on the normalised batch.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.ops import roi_align

from app.data import IMAGENETTE_CLASSES

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


def random_resized_boxes(n: int, size: int, scale: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """n crop boxes (x1, y1, x2, y2) in pixels, as torchvision's RandomResizedCrop samples them."""
    area = size * size
    s = torch.empty(n).uniform_(scale[0], scale[1], generator=gen) * area
    logr = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)
    ratio = torch.exp(logr)
    w = torch.sqrt(s * ratio).clamp(8, size)
    h = torch.sqrt(s / ratio).clamp(8, size)
    x1 = torch.rand(n, generator=gen) * (size - w)
    y1 = torch.rand(n, generator=gen) * (size - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def augment_batch(
    images: torch.Tensor, r: int, mean, std, gen: torch.Generator, scale: tuple[float, float] = (0.35, 1.0)
) -> torch.Tensor:
    """Random-resized crop to r x r, random flip, normalise. ``images``: B x 3 x S x S uint8."""
    b = images.size(0)
    x = images.float()
    boxes = random_resized_boxes(b, images.size(-1), scale, gen)
    rois = torch.cat([torch.arange(b, dtype=torch.float32).unsqueeze(1), boxes], dim=1)
    out = roi_align(x, rois, output_size=(r, r), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    flip = torch.rand(b, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    m = torch.tensor(mean).view(1, 3, 1, 1) * 255
    s = torch.tensor(std).view(1, 3, 1, 1) * 255
    return (out - m) / s


def cutmix_batch(
    x: torch.Tensor, labels: torch.Tensor, prob: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """CutMix (Yun et al., 2019) on a normalised batch, with probability ``prob``: one box, its area
    drawn uniformly (Beta(1, 1)), is pasted from a shuffled copy of the batch into every image.
    Returns the images, the pasted images' labels and the fraction of every image left unchanged
    (1.0 and ``labels`` unchanged when the batch is not mixed)."""
    if prob <= 0 or float(torch.rand(1, generator=gen)) >= prob:
        return x, labels, 1.0
    b, _, h, w = x.shape
    perm = torch.randperm(b, generator=gen)
    cut = math.sqrt(1.0 - float(torch.rand(1, generator=gen)))  # side fraction: area 1 - lambda
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    mixed = x.clone()
    mixed[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    return mixed, labels[perm], 1.0 - (y2 - y1) * (x2 - x1) / (h * w)


def downscale_batch(x: torch.Tensor, r: int) -> torch.Tensor:
    """A batch scaled (antialiased) to r x r: the student's view of a crop made for a higher-resolution teacher."""
    if x.size(-1) == r:
        return x
    return torch.nn.functional.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=True)


def center_batch(images: torch.Tensor, r: int, mean, std) -> torch.Tensor:
    """The eval transform on stored images: resize to ceil(r/0.875), centre-crop r, normalise."""
    x = images.float()
    big = int(math.ceil(r / 0.875))
    x = torch.nn.functional.interpolate(x, size=(big, big), mode="bilinear", align_corners=False, antialias=True)
    off = (big - r) // 2
    x = x[:, :, off : off + r, off : off + r]
    m = torch.tensor(mean).view(1, 3, 1, 1) * 255
    s = torch.tensor(std).view(1, 3, 1, 1) * 255
    return (x - m) / s


def recalibrate_on_training_images(subnet: torch.nn.Module, train: TensorImages, r: int, mean, std,
                                   n: int = 2000, seed: int = 0, batch: int = 100) -> int:
    """OFA's BN re-estimation (``set_running_statistics``) of ``subnet`` on ``n`` training images
    drawn with ``seed``, centre-cropped at resolution ``r``; returns the number of images used."""
    from app.calibrate import recalibrate_bn

    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return recalibrate_bn(subnet, (center_batch(train.images[idx[i : i + batch]], r, mean, std) for i in range(0, len(idx), batch)))
