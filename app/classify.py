"""Classify images with an extracted subnet: top-k classes, probabilities and time taken."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from app.data import image_tensor


@dataclass(frozen=True)
class Classification:
    """Top-k answer of one subnet for one image."""

    labels: list[str]
    probabilities: list[float]
    indices: list[int]
    seconds: float  # preprocessing + forward, measured here
    resolution: int

    @property
    def top1(self) -> str:
        return self.labels[0]

    def to_dict(self) -> dict:
        return {
            "top": [{"label": l, "probability": p, "index": i} for l, p, i in zip(self.labels, self.probabilities, self.indices)],
            "seconds": self.seconds,
            "resolution": self.resolution,
        }


@torch.no_grad()
def classify(subnet: nn.Module, image: Image.Image, classes: list[str], mean, std, topk: int = 5) -> Classification:
    """Run ``subnet`` (at its config's resolution) on ``image``."""
    if topk < 1:
        raise ValueError("topk must be at least 1")
    t = time.perf_counter()
    r = subnet.config.r
    x = image_tensor(image, r, mean, std)
    probs = torch.softmax(subnet(x)[0], dim=0)
    k = min(topk, probs.numel())
    p, idx = probs.topk(k)
    seconds = time.perf_counter() - t
    return Classification([classes[i] for i in idx.tolist()], p.tolist(), idx.tolist(), seconds, r)
