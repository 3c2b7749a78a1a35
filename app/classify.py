"""Classify images with an extracted subnet: top-k classes, probabilities, the open-world decision and time taken."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from app.data import image_tensor
from app.open_world import OpenWorldDecision, decide
from app.saliency import Saliency, grad_cam_from_features


@dataclass(frozen=True)
class Classification:
    """Top-k answer of one subnet for one image, and whether the image is one of its classes at all."""

    labels: list[str]
    probabilities: list[float]
    indices: list[int]
    seconds: float  # preprocessing + forward + open-world decision, measured here
    resolution: int
    open_world: OpenWorldDecision | None = None  # None when not asked for
    saliency: Saliency | None = None  # Grad-CAM of the top class, when asked for (``explain=True``)

    @property
    def top1(self) -> str:
        return self.labels[0]

    @property
    def in_classes(self) -> bool | None:
        return None if self.open_world is None else self.open_world.in_classes

    def headline(self, num_classes: int) -> str:
        """One line for people: the top class, or that the image is none of the known classes."""
        if self.open_world is not None and not self.open_world.in_classes:
            return f"not one of its {num_classes} classes (closest: {self.top1} {self.probabilities[0]:.0%})"
        return f"{self.top1} ({self.probabilities[0]:.0%})"

    def to_dict(self) -> dict:
        out = {
            "top": [{"label": l, "probability": p, "index": i} for l, p, i in zip(self.labels, self.probabilities, self.indices)],
            "seconds": self.seconds,
            "resolution": self.resolution,
        }
        if self.open_world is not None:
            out.update(self.open_world.to_dict())
        return out


def classify(subnet: nn.Module, image: Image.Image, card, topk: int = 5, open_world: bool = True,
             explain: bool = False) -> Classification:
    """Run ``subnet`` (at its config's resolution) on ``image``; ``card`` is its supernet's card (classes,
    normalisation). With ``open_world`` the result also says whether the image is one of the card's
    classes (:mod:`app.open_world`); with ``explain`` it carries a Grad-CAM map of the top class, computed from
    this forward pass's last feature map (:mod:`app.saliency`: only the head runs again, with gradients)."""
    if topk < 1:
        raise ValueError("topk must be at least 1")
    t = time.perf_counter()
    r = subnet.config.r
    with torch.inference_mode():
        x = image_tensor(image, r, card.mean, card.std)
        last = subnet.feature_map(x)
        features = subnet.pooled_features(last)
        logits = subnet.classifier(features)
        probs = torch.softmax(logits[0], dim=0)
        k = min(topk, probs.numel())
        p, idx = probs.topk(k)
    decision = decide(image, subnet, card, logits, features, x) if open_world else None
    seconds = time.perf_counter() - t
    cam = None
    if explain:
        t_cam = time.perf_counter()
        heatmap, top = grad_cam_from_features(subnet, last, r, int(idx[0]))
        cam = Saliency(heatmap.numpy(), top, card.classes[top], time.perf_counter() - t_cam)
    return Classification([card.classes[i] for i in idx.tolist()], p.tolist(), idx.tolist(), seconds, r, decision, cam)


def classify_onnx(model, image: Image.Image, card, topk: int = 5) -> Classification:
    """Top-k of an ONNX subnet (:class:`app.quantize.OnnxSubnet`, e.g. the int8 one) on ``image``: the same
    preprocessing as :func:`classify`; no open-world decision or saliency (those belong to the PyTorch subnet)."""
    if topk < 1:
        raise ValueError("topk must be at least 1")
    t = time.perf_counter()
    x = image_tensor(image, model.config.r, card.mean, card.std)
    probs = torch.softmax(model(x)[0], dim=0)
    p, idx = probs.topk(min(topk, probs.numel()))
    return Classification([card.classes[i] for i in idx.tolist()], p.tolist(), idx.tolist(), time.perf_counter() - t,
                          model.config.r)
