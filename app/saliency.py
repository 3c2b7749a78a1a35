"""Grad-CAM saliency maps for extracted subnets (Selvaraju et al., ICCV 2017).

    from app.saliency import saliency, overlay
    s = saliency(sub, image, net.card.mean, net.card.std, classes=net.card.classes)
    overlay(image, s.heatmap, sub.config.r).save("cam.png")

The target layer is the output of ``final_expand`` (the last convolutional feature
map, C x h x w). Everything before it runs once under ``torch.no_grad()``; that
activation is then detached into a leaf that requires grad, and only the head (global
mean pool -> ``feature_mix`` -> ``classifier``) runs with autograd, so the backward pass
costs a tiny fraction of a forward pass. The result is identical to the textbook
Grad-CAM (a hook on ``final_expand`` and a backward pass through the whole network):
the gradient of the logit w.r.t. the activation only depends on the head.

Nothing is changed on the subnet passed in: no hooks are registered, ``requires_grad``
of its parameters is left as it is (extracted subnets have it ``False``; gradients are
taken w.r.t. the activation only), and its train/eval mode is not touched.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from app.data import image_tensor

__all__ = [
    "Saliency", "grad_cam", "saliency", "overlay", "colorize", "eval_crop",
    "final_features", "grad_cam_from_features", "cam_from",
]


@dataclass(frozen=True)
class Saliency:
    """A Grad-CAM map of one subnet for one image.

    ``heatmap``: r x r float32 array in [0, 1] (r = the subnet's resolution), aligned with
    the centre crop the subnet sees (see :func:`eval_crop`); ``class_index``: the class it
    explains; ``label``: that class's name when class names were given; ``seconds``:
    preprocessing + forward + backward, measured here."""

    heatmap: np.ndarray
    class_index: int
    label: str | None
    seconds: float


def final_features(subnet: nn.Module, x: Tensor) -> Tensor:
    """The Grad-CAM target layer: ``final_expand``'s output (N x C x h x w) for the
    normalised input ``x``, computed without autograd (the same ops as the subnet's forward)."""
    with torch.inference_mode(False), torch.no_grad():
        return subnet.feature_map(x)


def cam_from(activation: Tensor, gradient: Tensor, size: int) -> Tensor:
    """Grad-CAM from a 1 x C x h x w activation and its gradient: channel weights are the
    spatially averaged gradients, map = ReLU(sum_c w_c A_c), normalised to [0, 1] (all zeros
    if nothing is positive), bilinearly upsampled to ``size`` x ``size``."""
    weights = gradient.mean((2, 3), keepdim=True)
    cam = torch.relu((weights * activation).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    top = float(cam.max())
    if not math.isfinite(top) or top <= 0.0:
        return torch.zeros(size, size, dtype=torch.float32)
    return (cam / top).clamp_(0.0, 1.0).float()


def grad_cam_from_features(
    subnet: nn.Module, features: Tensor, size: int, class_index: int | None = None
) -> tuple[Tensor, int]:
    """(size x size Grad-CAM map in [0, 1], explained class) from ``final_expand``'s output
    (1 x C x h x w, e.g. from :func:`final_features`): only the head (mean pool ->
    ``feature_mix`` -> ``classifier``) runs with autograd, one backward from the class logit
    (the argmax when ``class_index`` is None). This is the whole extra cost of a saliency
    map for a caller that already has the features."""
    if features.dim() != 4 or features.shape[0] != 1:
        raise ValueError(f"grad_cam: expected 1xCxhxw features, got {tuple(features.shape)}")
    with torch.inference_mode(False), torch.enable_grad():
        # A fresh leaf outside inference mode (the clone: ``features`` may be an inference tensor).
        a = features.detach().clone().requires_grad_(True)
        logits = subnet.classifier(subnet.pooled_features(a))
        n = logits.shape[1]
        k = int(logits[0].argmax()) if class_index is None else int(class_index)
        if not 0 <= k < n:
            raise ValueError(f"grad_cam: class_index {class_index} outside 0..{n - 1}")
        (grad,) = torch.autograd.grad(logits[0, k], a)
    with torch.no_grad():
        return cam_from(a.detach(), grad, size), k


def _cam(subnet: nn.Module, x: Tensor, class_index: int | None) -> tuple[Tensor, int]:
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"grad_cam: expected a 1x3xHxW input, got {tuple(x.shape)}")
    return grad_cam_from_features(subnet, final_features(subnet, x), int(x.shape[-1]), class_index)


def grad_cam(subnet: nn.Module, x: Tensor, class_index: int | None = None) -> Tensor:
    """Grad-CAM of ``subnet`` (an extracted ``MobileNetV3Subnet``) for a 1 x 3 x r x r input.

    Returns an r x r float32 tensor in [0, 1] explaining ``class_index`` (default: the
    predicted class, argmax of the logits); all zeros when the ReLU leaves nothing positive.
    Gradients are needed, so it switches ``torch.inference_mode`` off and grad on itself:
    callers inside ``no_grad()`` or ``inference_mode()`` need not care (an input created
    under inference mode is only read). The subnet is not modified: no hooks, no
    ``requires_grad`` or train/eval changes.
    """
    return _cam(subnet, x, class_index)[0]


def saliency(
    subnet: nn.Module,
    image: Image.Image,
    mean: Sequence[float],
    std: Sequence[float],
    class_index: int | None = None,
    classes: Sequence[str] | None = None,
) -> Saliency:
    """Grad-CAM of ``subnet`` for a PIL image, preprocessed exactly as for classification
    (:func:`app.data.image_tensor` at ``subnet.config.r``). ``class_index`` defaults to the
    predicted class; ``classes`` (names, e.g. ``net.card.classes``) fills in ``label``."""
    t = time.perf_counter()
    r = int(subnet.config.r)
    x = image_tensor(image.convert("RGB") if image.mode != "RGB" else image, r, mean, std)
    cam, k = _cam(subnet, x, class_index)
    label = str(classes[k]) if classes is not None and k < len(classes) else None
    heatmap = cam.numpy().astype(np.float32, copy=False)
    return Saliency(heatmap, k, label, time.perf_counter() - t)


def eval_crop(image: Image.Image, r: int) -> Image.Image:
    """The r x r RGB view of ``image`` the subnet sees: the eval transform's geometry
    (shorter side resized to ceil(r / 0.875), bilinear; centre crop r), not normalised."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    short = int(math.ceil(r / 0.875))
    w, h = image.size
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    if size != (w, h):
        image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = int(round((size[0] - r) / 2.0)), int(round((size[1] - r) / 2.0))
    return image.crop((left, top, left + r, top + r))


# A few stops of matplotlib's perceptually uniform "inferno" map (positions 0, 1/8, ..., 1).
_INFERNO = np.array(
    [
        [0, 0, 4],
        [31, 12, 72],
        [85, 15, 109],
        [136, 34, 106],
        [186, 54, 85],
        [227, 89, 51],
        [249, 140, 10],
        [249, 201, 50],
        [252, 255, 164],
    ],
    dtype=np.float32,
)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """H x W values in [0, 1] -> H x W x 3 uint8 RGB through an inferno-like colour ramp
    (piecewise linear between the stops; NaN counts as 0)."""
    v = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0).clip(0.0, 1.0)
    pos = v * (len(_INFERNO) - 1)
    lo = np.floor(pos).astype(np.int64).clip(0, len(_INFERNO) - 2)
    frac = (pos - lo)[..., None]
    rgb = _INFERNO[lo] * (1.0 - frac) + _INFERNO[lo + 1] * frac
    return np.rint(rgb).clip(0, 255).astype(np.uint8)


def overlay(image: Image.Image, heatmap: np.ndarray, r: int, alpha: float = 0.45) -> Image.Image:
    """The heat map (colour-ramped) blended with weight ``alpha`` over the centre-cropped
    r x r view of ``image`` the subnet saw (:func:`eval_crop`). Returns an r x r RGB image.
    A heat map of another size is resized (bilinear) to r x r first."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("overlay: alpha must be in [0, 1]")
    base = np.asarray(eval_crop(image, r), dtype=np.float32)
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2:
        raise ValueError(f"overlay: heatmap must be 2-D, got shape {h.shape}")
    if h.shape != (r, r):
        t = torch.from_numpy(np.ascontiguousarray(h))[None, None]
        h = F.interpolate(t, size=(r, r), mode="bilinear", align_corners=False)[0, 0].numpy()
    colour = colorize(h).astype(np.float32)
    out = (1.0 - alpha) * base + alpha * colour
    return Image.fromarray(np.rint(out).clip(0, 255).astype(np.uint8), mode="RGB")
