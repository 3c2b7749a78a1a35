"""Loading and saving supernets: the project's format and official OFA checkpoints.

Project format: ``<stem>.safetensors`` (weights) beside ``<stem>.json`` (the
:class:`~app.card.SupernetCard`: width, classes, normalisation, provenance and the
weights file's sha256, verified at load). Official OFA checkpoints
(``torch.save({'state_dict': ...})`` of ``OFAMobileNetV3``) are read with
``torch.load(weights_only=True)``: no pickled code ever runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from app.card import SupernetCard
from app.supernet import OFASupernet

from app.paths import PRETRAINED as PRETRAINED_DIR

DEFAULT_STEM = "ofa_mbv3_w1.2_imagenette"


class SupernetLoadError(ValueError):
    """A supernet file that cannot be used; the message says why."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a crash leaves either the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# ------------------------------------------------------------------ OFA key mapping
_OFA_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^first_conv\.(conv|bn)\."), r"stem.\1."),
    (re.compile(r"^blocks\.0\.conv\.depth_conv\.(conv|bn)\."), r"first_block.depthwise.\1."),
    (re.compile(r"^blocks\.0\.conv\.point_linear\.(conv|bn)\."), r"first_block.project.\1."),
    (re.compile(r"^blocks\.(\d+)\.conv\.inverted_bottleneck\.(conv|bn)\.\2\."), r"blocks.{\1}.expand.\2."),
    (re.compile(r"^blocks\.(\d+)\.conv\.depth_conv\.(conv|bn)\.\2\."), r"blocks.{\1}.depthwise.\2."),
    (re.compile(r"^blocks\.(\d+)\.conv\.depth_conv\.conv\.(\d)to(\d)_matrix$"), r"blocks.{\1}.depthwise.transform_\2to\3"),
    (re.compile(r"^blocks\.(\d+)\.conv\.depth_conv\.se\.fc\.(reduce|expand)\."), r"blocks.{\1}.se.\2."),
    (re.compile(r"^blocks\.(\d+)\.conv\.point_linear\.(conv|bn)\.\2\."), r"blocks.{\1}.project.\2."),
    (re.compile(r"^final_expand_layer\.(conv|bn)\."), r"final_expand.\1."),
    (re.compile(r"^feature_mix_layer\.conv\."), r"feature_mix.conv."),
    (re.compile(r"^classifier\.linear\."), r"classifier."),
]


def ofa_to_project_key(key: str) -> str | None:
    """Map an ``OFAMobileNetV3`` state-dict key to this project's, or None if unknown."""
    for pattern, repl in _OFA_RULES:
        m = pattern.match(key)
        if m:
            new = pattern.sub(repl, key, count=1)
            # OFA's blocks.1..20 are our blocks.0..19
            return re.sub(r"\{(\d+)\}", lambda g: str(int(g.group(1)) - 1), new)
    return None


def _imagenet_classes() -> list[str]:
    from torchvision.models import MobileNet_V3_Large_Weights

    return list(MobileNet_V3_Large_Weights.IMAGENET1K_V1.meta["categories"])


def _load_state_into(net: OFASupernet, state: dict[str, Tensor], source: str) -> None:
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise SupernetLoadError(
            f"{source}: state dict does not match the OFA-MBv3 supernet "
            f"(missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: {unexpected[:3]})"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise SupernetLoadError(f"{source}: tensor {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
        if not torch.is_floating_point(v) and torch.is_floating_point(own[k]):
            raise SupernetLoadError(f"{source}: tensor {k} is {v.dtype}, expected floating point")
    net.load_state_dict({k: v for k, v in state.items()}, strict=False)


def freeze(net: OFASupernet) -> OFASupernet:
    """``net`` in inference mode with gradients off: how every shared, read-only supernet is handed out."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_ofa_checkpoint(path: str | Path) -> OFASupernet:
    """An official OFA ``OFAMobileNetV3`` checkpoint (width and classes inferred from shapes)."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad file
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            msg = "it contains pickled code or objects, which are refused for safety"
        raise SupernetLoadError(f"{path.name}: not a loadable OFA checkpoint ({msg})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise SupernetLoadError(f"{path.name}: expected a dict with a 'state_dict' of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    mapped: dict[str, Tensor] = {}
    for k, v in state.items():
        new = ofa_to_project_key(k)
        if new is None:
            raise SupernetLoadError(f"{path.name}: unexpected tensor {k!r} (not an OFA-MBv3 supernet)")
        mapped[new] = v
    try:
        stem_width = mapped["stem.conv.weight"].shape[0]
        n_classes = mapped["classifier.weight"].shape[0]
    except KeyError as exc:
        raise SupernetLoadError(f"{path.name}: missing {exc.args[0]} (not an OFA-MBv3 supernet)") from None
    width = {16: 1.0, 24: 1.2}.get(int(stem_width))
    if width is None:
        raise SupernetLoadError(f"{path.name}: first conv has {stem_width} channels; OFA-MBv3 has 16 (w1.0) or 24 (w1.2)")
    classes = _imagenet_classes() if n_classes == 1000 else [f"class {i}" for i in range(n_classes)]
    card = SupernetCard(
        width_mult=width,
        classes=classes,
        name=f"ofa_mbv3_d234_e346_k357_w{width}",
        provenance=f"official OFA checkpoint {path.name} (mit-han-lab/once-for-all, MIT)",
        sha256=sha256_file(path),
        extra={"calibration": "imagenet" if n_classes == 1000 else "bundled"},
    )
    net = OFASupernet(card)
    _load_state_into(net, mapped, path.name)
    return freeze(net)


def save_supernet(net: OFASupernet, stem_path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (atomically); returns the weights path.

    ``dtype`` (e.g. ``torch.float16``) stores the tensors at that precision, half the size for
    weights staged between training sessions; loading casts them back to the network's float32.
    """
    from safetensors.torch import save

    stem_path = Path(stem_path)
    stem_path = stem_path.with_suffix("") if stem_path.suffix in (".safetensors", ".json") else stem_path
    weights = stem_path.parent / (stem_path.name + ".safetensors")
    state = {
        k: v.detach().to(dtype or v.dtype).contiguous().cpu()
        for k, v in net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    data = save(state)
    atomic_write_bytes(weights, data)
    card = net.card.to_dict()
    card["sha256"] = hashlib.sha256(data).hexdigest()
    card["weights_file"] = weights.name
    atomic_write_text(stem_path.parent / (stem_path.name + ".json"), json.dumps(card, indent=2) + "\n")
    return weights


def load_project_supernet(path: str | Path) -> OFASupernet:
    """The project's format: a ``.safetensors`` / ``.json`` pair (either path, or the stem)."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    weights = stem.parent / (stem.name + ".safetensors")
    card_path = stem.parent / (stem.name + ".json")
    if not weights.is_file():
        raise SupernetLoadError(f"{weights}: no such weights file")
    if not card_path.is_file():
        raise SupernetLoadError(f"{card_path}: the metadata card (JSON) is missing")
    try:
        card_dict: dict[str, Any] = json.loads(card_path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SupernetLoadError(f"{card_path.name}: invalid JSON ({exc})") from None
    if not isinstance(card_dict, dict):
        raise SupernetLoadError(f"{card_path.name}: expected a JSON object")
    card = SupernetCard.from_dict(card_dict)
    data = weights.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if card.sha256 and digest != card.sha256:
        raise SupernetLoadError(
            f"{weights.name}: sha256 mismatch (file {digest[:12]}..., card {card.sha256[:12]}...): "
            "the weights file is modified or truncated"
        )
    try:
        state = st_load(data)
    except (SafetensorError, Exception) as exc:  # noqa: BLE001
        raise SupernetLoadError(f"{weights.name}: not a valid safetensors file ({str(exc)[:150]})") from None
    if card.width_mult not in (1.0, 1.2):
        raise SupernetLoadError(f"{card_path.name}: width_mult must be 1.0 or 1.2; got {card.width_mult}")
    net = OFASupernet(card.replace(sha256=digest))
    _load_state_into(net, state, weights.name)
    return freeze(net)


def placeholder_supernet(width_mult: float = 1.2, seed: int = 0) -> OFASupernet:
    """A random-init supernet, clearly labelled as untrained (used until trained weights exist)."""
    from app.data import IMAGENETTE_CLASSES

    torch.manual_seed(seed)
    card = SupernetCard(
        width_mult=width_mult,
        classes=[name for _, name in IMAGENETTE_CLASSES.values()],
        class_ids=list(IMAGENETTE_CLASSES),
        name=f"PLACEHOLDER random-init ofa_mbv3_w{width_mult} (untrained)",
        provenance="random initialisation (seed 0): NOT TRAINED, predictions are meaningless",
        placeholder=True,
    )
    return freeze(OFASupernet(card))


def default_weights_path() -> Path:
    return PRETRAINED_DIR / f"{DEFAULT_STEM}.safetensors"


def load_supernet(path: str | Path | None = None) -> OFASupernet:
    """Load a supernet: the bundled default, the project's format or an official OFA checkpoint.

    The returned supernet is in eval mode with gradients off; treat it as read-only.
    """
    if path is None:
        weights = default_weights_path()
        if weights.is_file():
            return load_project_supernet(weights)
        return placeholder_supernet()
    p = Path(path)
    if p.is_dir():
        cands = sorted(p.glob("*.safetensors"))
        if len(cands) == 1:
            return load_project_supernet(cands[0])
        raise SupernetLoadError(f"{p}: a directory must hold exactly one .safetensors supernet (found {len(cands)})")
    if p.suffix in (".safetensors", ".json") or (not p.is_file() and (p.parent / (p.name + ".safetensors")).is_file()):
        return load_project_supernet(p)
    if not p.is_file():
        raise SupernetLoadError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise SupernetLoadError(f"{p.name}: the file is empty")
    return load_ofa_checkpoint(p)
