"""The one eval transform equals torchvision's Resize / CenterCrop / ToTensor / Normalize, pixel for pixel."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from app.data import eval_transform, load_image

ROOT = Path(__file__).resolve().parent.parent
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _images() -> list[Image.Image]:
    out = [load_image(p) for p in sorted((ROOT / "assets" / "samples").glob("*.jpg"))[:4]]
    for size in ((300, 97), (97, 300), (224, 224), (256, 256), (1024, 683)):
        out.append(Image.effect_noise(size, 60).convert("RGB"))
    return out


@pytest.mark.parametrize("r", [128, 132, 160, 196, 224])
def test_eval_transform_equals_torchvision(r):
    from torchvision import transforms as T

    ref = T.Compose([T.Resize(int(math.ceil(r / 0.875)), interpolation=T.InterpolationMode.BILINEAR),
                     T.CenterCrop(r), T.ToTensor(), T.Normalize(MEAN, STD)])
    ours = eval_transform(r, MEAN, STD)
    for image in _images():
        a, b = ours(image), ref(image)
        assert a.shape == (3, r, r)
        assert torch.equal(a, b)


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette").is_dir(),
                    reason="../shared/data/imagenette not present")
def test_on_demand_measurement_set_never_uses_the_predictors_images():
    """The app's measurement images come from val half B; the accuracy predictor's data is half A."""
    import torch

    from app.evaluate import MEASURE_DIR
    from app.datasets import list_split, val_half

    paths, labels = list_split(Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette", "val")
    half_a = {f"{paths[i].parent.name}_{paths[i].stem}.jpg" for i in val_half(torch.tensor(labels), 0).tolist()}
    bundled = {p.name for p in MEASURE_DIR.glob("*.jpg")}
    assert len(bundled) == 300 and not bundled & half_a


def test_evaluation_sees_exactly_what_classify_sees(tmp_path):
    """The model card and ``evaluate`` read Imagenette through :mod:`app.datasets`: for its files (stored at 224 x 224)
    the batch they measure is bit for bit the input Classify builds from the same file, at every resolution."""
    import shutil

    from app.data import image_tensor, load_image
    from app.datasets import center_batch, list_split, load_split
    from tests.conftest import shared_path

    root = shared_path("data", "imagenette")
    files, _ = list_split(root, "val")
    picked = files[::400]  # 10 files across the classes, grayscale ones included if they fall here
    for p in picked:
        (tmp_path / "val" / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tmp_path / "val" / p.parent.name / p.name)
    split = load_split(tmp_path, "val", progress=False)
    ordered, _ = list_split(tmp_path, "val")
    for r in (128, 160, 224):
        batch = center_batch(split.images, r, MEAN, STD)
        classify_inputs = torch.cat([image_tensor(load_image(p), r, MEAN, STD) for p in ordered])
        assert torch.equal(batch, classify_inputs), r
