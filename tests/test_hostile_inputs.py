"""Hostile and odd inputs: a generated corpus of image files, arbitrary config text/JSON.

Every input yields a usable RGB image / a valid config, or a clear user-facing error —
never a traceback, never unbounded memory.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.data import MAX_SIDE, MAX_UPLOAD_BYTES, ImageError, load_image
from app.space import SubnetConfig


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming a huge size, with a tiny (bogus) IDAT."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def _exif_rotated_jpeg() -> bytes:
    im = Image.new("RGB", (80, 40), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW on display
    return _save(im, "JPEG", exif=exif.tobytes())


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


GOOD = {
    "rgb.png": _save(Image.new("RGB", (64, 64), (10, 200, 30)), "PNG"),
    "rgb.jpg": _save(Image.new("RGB", (64, 64), (10, 200, 30)), "JPEG"),
    "one_pixel.png": _save(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"),
    "wide.png": _save(Image.new("RGB", (4000, 3), (9, 9, 9)), "PNG"),
    "tall.png": _save(Image.new("RGB", (3, 4000), (9, 9, 9)), "PNG"),
    "grey.png": _save(Image.new("L", (50, 50), 77), "PNG"),
    "grey_alpha.png": _save(Image.new("LA", (50, 50), (77, 100)), "PNG"),
    "rgba.png": _save(Image.new("RGBA", (50, 50), (0, 0, 0, 0)), "PNG"),
    "cmyk.jpg": _save(Image.new("CMYK", (50, 50), (0, 255, 0, 0)), "JPEG"),
    "palette_transparency.png": _save(Image.new("P", (40, 40), 3), "PNG", transparency=3),
    "palette.gif": _save(Image.new("P", (40, 40), 5), "GIF"),
    "sixteen_bit.png": _save(Image.new("I;16", (40, 40), 40000), "PNG"),
    "int32.tif": _save(Image.new("I", (40, 40), 70000), "TIFF"),
    "float.tif": _save(Image.new("F", (40, 40), 0.5), "TIFF"),
    "bilevel.png": _save(Image.new("1", (40, 40), 1), "PNG"),
    "animated.gif": _animated("GIF"),
    "animated.webp": _animated("WEBP"),
    "still.webp": _save(Image.new("RGB", (30, 30), (1, 1, 1)), "WEBP"),
    "bmp.bmp": _save(Image.new("RGB", (30, 30), (1, 1, 1)), "BMP"),
    "tiff.tif": _save(Image.new("RGB", (30, 30), (1, 1, 1)), "TIFF"),
    "ico.ico": _save(Image.new("RGBA", (32, 32), (1, 1, 1, 255)), "ICO"),
    "big_dims.png": _save(Image.new("RGB", (3000, 2000), (5, 5, 5)), "PNG"),
    "big.jpg": _save(Image.new("RGB", (4000, 3000), (5, 5, 5)), "JPEG", quality=50),
    "exif_rotated.jpg": _exif_rotated_jpeg(),
    "ycbcr.jpg": _save(Image.new("RGB", (33, 17), (200, 100, 50)), "JPEG", subsampling=2),
    "progressive.jpg": _save(Image.new("RGB", (64, 64), (200, 100, 50)), "JPEG", progressive=True),
}

UNREADABLE = "UNREADABLE"  # either of the two plain sentences below, never the decoder's internals
UNREADABLE_MESSAGES = ("not an image the app can read", "damaged or incomplete")

BAD = {
    "empty.png": (b"", "empty"),
    "text.jpg": (b"hello, this is not an image\n" * 20, UNREADABLE),
    "html.png": (b"<!doctype html><html><body>hi</body></html>", UNREADABLE),
    "zeros.jpg": (b"\0" * 5000, UNREADABLE),
    "random.webp": (bytes(range(256)) * 20, UNREADABLE),
    "truncated.jpg": (GOOD["big.jpg"][:300], UNREADABLE),
    "truncated.png": (GOOD["big_dims.png"][:200], UNREADABLE),
    "png_signature_only.png": (b"\x89PNG\r\n\x1a\n", UNREADABLE),
    "jpeg_soi_only.jpg": (b"\xff\xd8\xff", UNREADABLE),
    "bomb.png": (_png_header_only(30000, 30000), "too large"),
    "bomb_wide.png": (_png_header_only(200000, 1000), "too large"),
    "gzip.png": (zlib.compress(b"x" * 10000), UNREADABLE),
    "pdf.jpg": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", UNREADABLE),
    "svg.png": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', UNREADABLE),
    "too_big.jpg": (b"\xff\xd8" + b"\0" * (MAX_UPLOAD_BYTES + 1), "too large"),
}


def test_corpus_is_large_enough():
    assert len(GOOD) + len(BAD) >= 40


@pytest.mark.parametrize("name", sorted(GOOD))
def test_odd_but_valid_images_load_as_bounded_rgb(name):
    im = load_image(GOOD[name])
    assert im.mode == "RGB"
    assert 1 <= im.width <= MAX_SIDE and 1 <= im.height <= MAX_SIDE


def test_exif_orientation_is_honoured():
    im = load_image(GOOD["exif_rotated.jpg"])
    assert (im.width, im.height) == (40, 80)


def test_transparency_is_composited_on_white():
    im = load_image(GOOD["rgba.png"])
    assert im.getpixel((0, 0)) == (255, 255, 255)


def test_first_frame_of_animations():
    assert load_image(GOOD["animated.gif"]).getpixel((5, 5))[0] > 200  # red first frame


@pytest.mark.parametrize("name", sorted(BAD))
def test_hostile_files_give_clear_errors(name):
    data, message = BAD[name]
    with pytest.raises(ImageError) as exc:
        load_image(data)
    text = str(exc.value)
    if message == UNREADABLE:
        assert any(m in text for m in UNREADABLE_MESSAGES), text
    else:
        assert message in text
    for internal in ("Traceback", "Error", "BytesIO", "0x", "<"):
        assert internal not in text, text


def test_paths_and_missing_files(tmp_path):
    with pytest.raises(ImageError, match="No such image file"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "ok.png").write_bytes(GOOD["rgb.png"])
    assert load_image(tmp_path / "ok.png").size == (64, 64)


# ------------------------------------------------------------------ configs (property-based)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 300) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=25) | st.dictionaries(st.text(max_size=5), children, max_size=6),
    max_leaves=60,
)


def _config_like():
    choice = lambda xs: st.sampled_from(xs)  # noqa: E731
    return st.fixed_dictionaries(
        {
            "ks": st.lists(choice([3, 5, 7, 4, "7", None]), min_size=18, max_size=21),
            "e": st.lists(choice([3, 4, 6, 5, 6.0]), min_size=19, max_size=21),
            "d": st.lists(choice([2, 3, 4, 1, True]), min_size=4, max_size=6),
            "r": choice([224, [160], 130, 300, "224", [128, 132], None, 200.0]),
        }
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, _config_like()))
def test_any_json_gives_a_config_or_a_clear_error(value):
    try:
        cfg = SubnetConfig.parse(value) if isinstance(value, (dict, str)) else SubnetConfig.parse(json.dumps(value))
    except ValueError as exc:
        assert str(exc) and len(str(exc)) < 400
        return
    assert SubnetConfig.from_compact(cfg.to_compact()) == cfg


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_string_gives_a_config_or_a_clear_error(text):
    try:
        cfg = SubnetConfig.parse(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert SubnetConfig.parse(cfg.to_compact()) == cfg


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_configs_round_trip(seed):
    cfg = SubnetConfig.random(seed)
    assert SubnetConfig.parse(cfg.to_compact()) == cfg == SubnetConfig.from_dict(json.loads(cfg.to_json()))


def test_cli_classify_over_the_whole_corpus(tmp_path):
    """The CLI: every odd-but-valid file classified, every hostile one a one-line error, no traceback."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    paths = []
    for name, data in GOOD.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    for name, (data, _) in BAD.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    res = subprocess.run([sys.executable, "-m", "app", "classify", *paths, "--config", "smallest", "--format", "json"],
                         cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True, timeout=600)
    assert res.returncode == 1  # some inputs failed
    assert "Traceback" not in res.stderr
    errors = res.stderr.strip().splitlines()
    assert len(errors) == len(BAD)
    for name, (_, message) in BAD.items():
        line = next(e for e in errors if e.startswith(f"error: {tmp_path / name}: "))
        assert any(m in line for m in UNREADABLE_MESSAGES) if message == UNREADABLE else message in line, line
    rows = json.loads(res.stdout)
    assert sorted(Path(r["image"]).name for r in rows) == sorted(GOOD)
    # every odd-but-valid image also gets an open-world verdict and score
    assert all(isinstance(r["in_classes"], bool) and 0.0 <= r["ood_score"] <= 1.0 for r in rows)
