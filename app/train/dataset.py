"""Batched training augmentation on images held in memory (:class:`app.datasets.TensorImages`).

Decoding 13k JPEGs every epoch would cost more than the forward passes of a small
subnet on a 2-core CPU, so images are decoded once (:func:`app.datasets.load_split`)
and augmented per batch: random-resized crops via ``roi_align`` (one call per batch),
horizontal flips, then normalisation; optionally CutMix on the normalised batch.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import roi_align


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
