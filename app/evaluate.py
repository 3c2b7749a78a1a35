"""Measured accuracy of a subnet on a folder of labelled images (``<wnid>_*.jpg`` or ``<wnid>/*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from app.data import eval_transform, load_image
from app.space import SubnetConfig
from app.supernet import OFASupernet

MEASURE_DIR = Path(__file__).resolve().parent.parent / "assets" / "measure"

# the subnets the bundled supernet's model card reports, at r = 128, 160, 192, 224
MODEL_CARD_SUBNETS = {
    "largest (d4 e6 k7)": SubnetConfig.uniform(7, 6, 4),
    "d4 e4 k5": SubnetConfig.uniform(5, 4, 4),
    "d3 e6 k5": SubnetConfig.uniform(5, 6, 3),
    "d3 e4 k3": SubnetConfig.uniform(3, 4, 3),
    "d2 e6 k7": SubnetConfig.uniform(7, 6, 2),
    "smallest (d2 e3 k3)": SubnetConfig.uniform(3, 3, 2),
}
MODEL_CARD_RESOLUTIONS = (128, 160, 192, 224)


def labelled_images(folder: Path, card) -> list[tuple[Path, int]]:
    """(path, label) pairs for images whose wnid the supernet knows (its class ids, or ImageNet-1k's)."""
    from app.data import IMAGENETTE_CLASSES

    index = {w: i for i, w in enumerate(card.class_ids)}
    if not index and card.num_classes == 1000:
        index = {w: i for w, (i, _) in IMAGENETTE_CLASSES.items()}
    out = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        wnid = p.parent.name if p.parent != folder else p.name.split("_")[0]
        if wnid in index:
            out.append((p, index[wnid]))
    return out


@torch.no_grad()
def measure_accuracy(
    net: OFASupernet,
    cfg: SubnetConfig,
    folder: Path = MEASURE_DIR,
    batch: int = 25,
    progress: Callable[[float], None] | None = None,
) -> float:
    """Top-1 (%) of ``cfg`` (BN re-estimated on the bundled calibration images) on the images in ``folder``."""
    items = labelled_images(Path(folder), net.card)
    if not items:
        raise ValueError(f"no labelled images for this supernet's classes in {folder}")
    sub = net.extract(cfg, calibrate=True)
    tf = eval_transform(cfg.r, net.card.mean, net.card.std)
    correct = 0
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        x = torch.stack([tf(load_image(p)) for p, _ in chunk])
        y = torch.tensor([label for _, label in chunk])
        correct += (sub(x).argmax(1) == y).sum().item()
        if progress:
            progress(min(1.0, (i + len(chunk)) / len(items)))
    return 100.0 * correct / len(items)


@torch.inference_mode()
def top1_on_tensors(subnet: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std, batch: int = 16) -> float:
    """Top-1 (%) of ``subnet`` (BN statistics final) on decoded uint8 images (N×3×H×W), centre-cropped at
    its config's resolution; BN is folded into the convolutions first (same outputs, faster).
    Batches of 16 ran 15% faster than 50 on the 2-core CPU (activations stay in cache)."""
    from app.train.dataset import center_batch  # imports torchvision: only measurement scripts need it

    folded = subnet.fold_batchnorm()
    r = subnet.config.r
    correct = 0
    for i in range(0, len(images), batch):
        x = center_batch(images[i : i + batch], r, mean, std).contiguous(memory_format=torch.channels_last)
        correct += (folded(x).argmax(1) == labels[i : i + batch]).sum().item()
    return 100.0 * correct / len(images)


def top1_with_training_bn(net: OFASupernet, cfg: SubnetConfig, train, val, bn_images: int = 2000, seed: int = 0) -> float:
    """Top-1 (%) of ``cfg`` on the decoded split ``val`` with BN re-estimated on ``bn_images`` images of
    ``train`` drawn with ``seed`` (OFA's method; the model card's figures use seed 0).
    ``train``/``val``: :class:`app.train.dataset.TensorImages`."""
    from app.train.dataset import recalibrate_on_training_images

    sub = net.extract(cfg)
    recalibrate_on_training_images(sub, train, cfg.r, net.card.mean, net.card.std, n=min(bn_images, len(train)), seed=seed)
    return top1_on_tensors(sub, val.images, val.labels, net.card.mean, net.card.std)
