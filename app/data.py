"""Images in, tensors out: the one eval transform, image loading, Imagenette.

The eval transform (resize the shorter side to ceil(r / 0.875), centre-crop r,
normalise with the card's mean and std) is used by classification, BN calibration
and evaluation alike.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

# Imagenette (fast.ai): wnid -> (ImageNet-1k index, name)
IMAGENETTE_CLASSES: dict[str, tuple[int, str]] = {
    "n01440764": (0, "tench"),
    "n02102040": (217, "English springer"),
    "n02979186": (482, "cassette player"),
    "n03000684": (491, "chain saw"),
    "n03028079": (497, "church"),
    "n03394916": (566, "French horn"),
    "n03417042": (569, "garbage truck"),
    "n03425413": (571, "gas pump"),
    "n03445777": (574, "golf ball"),
    "n03888257": (701, "parachute"),
}

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 64_000_000  # decompression-bomb guard (Pillow's own default is ~89 MP)
READABLE = "JPEG, PNG, WebP, GIF, BMP or TIFF"
MAX_SIDE = 1024  # images are downscaled to this before any tensor is built


class ImageError(ValueError):
    """An input that is not a usable image; the message is meant for the user."""


class EvalTransform:
    """PIL RGB image -> normalised 3×r×r tensor: resize the shorter side to ceil(r / 0.875)
    (bilinear, antialiased), centre-crop r, scale to [0, 1], normalise.

    Pixel-identical to torchvision's ``Resize`` / ``CenterCrop`` / ``ToTensor`` / ``Normalize``
    on PIL images (tested), without importing torchvision (about 2 s at start-up)."""

    def __init__(self, r: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.r = int(r)
        self.short = int(math.ceil(r / 0.875))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        w, h = image.size
        if w <= h:
            size = (self.short, int(self.short * h / w))
        else:
            size = (int(self.short * w / h), self.short)
        if size != (w, h):
            image = image.resize(size, Image.Resampling.BILINEAR)
        left, top = int(round((size[0] - self.r) / 2.0)), int(round((size[1] - self.r) / 2.0))
        image = image.crop((left, top, left + self.r, top + self.r))
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
        return (x - self.mean) / self.std


def eval_transform(r: int, mean: Sequence[float], std: Sequence[float]) -> EvalTransform:
    return EvalTransform(r, mean, std)


def load_image(source: str | Path | bytes | io.IOBase) -> Image.Image:
    """Open an image as RGB, EXIF orientation applied, first frame of animations, downscaled.

    Raises :class:`ImageError` with a user-facing message for anything unusable.
    """
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageError("The file is empty (0 bytes).")
        if len(source) > MAX_UPLOAD_BYTES:
            raise ImageError(f"The file is too large ({len(source) / 1e6:.1f} MB; limit {MAX_UPLOAD_BYTES / 1e6:.0f} MB).")
        fp: io.IOBase = io.BytesIO(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"No such image file: {path}")
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"The file is empty (0 bytes): {path.name}")
        if size > MAX_UPLOAD_BYTES:
            raise ImageError(f"The file is too large ({size / 1e6:.1f} MB; limit {MAX_UPLOAD_BYTES / 1e6:.0f} MB).")
        fp = open(path, "rb")
    else:
        fp = source
    try:
        with Image.open(fp) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(f"The image is too large ({im.width}x{im.height} pixels; limit {MAX_PIXELS // 1_000_000} MP).")
            im.seek(0)
            if im.width > 2 * MAX_SIDE or im.height > 2 * MAX_SIDE:
                im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at reduced scale
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, rgba)
            if im.mode == "I;16" or im.mode.startswith("I;16") or im.mode == "I":
                im = im.point(lambda v: v / 256).convert("L")
            im = im.convert("RGB")
            if max(im.size) > MAX_SIDE:
                im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
            if min(im.size) < 1:
                raise ImageError("The image has no pixels.")
            return im.copy()
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"The image is too large (over {MAX_PIXELS // 1_000_000} megapixels).") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"This file is not an image the app can read ({READABLE}).") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError("The image file is damaged or incomplete and cannot be decoded.") from None
    finally:
        if isinstance(source, (str, Path)):
            fp.close()


def image_tensor(image: Image.Image, r: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """1 x 3 x r x r normalised tensor of ``image``."""
    return eval_transform(r, mean, std)(image).unsqueeze(0)
