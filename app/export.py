"""Export an extracted subnet: state dict + JSON, TorchScript, ``torch.export`` (.pt2), ONNX (optional).

Every export is re-loaded and checked against the live subnet's output (max abs
difference ≤ 1e-4) before it is handed out. Files are written atomically.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from app.space import SubnetConfig
from app.card import SupernetCard
from app.weights import atomic_write_bytes

FORMATS = ("state_dict", "torchscript", "pt2", "onnx", "onnx-int8")
TOLERANCE = 1e-4
INT8_MIN_AGREEMENT = 95.0  # % of the bundled real images on which int8 and fp32 give the same top-1 (measured: 97-100)


class ExportError(RuntimeError):
    """An export that failed or did not reproduce the subnet's outputs."""


class Exported(NamedTuple):
    """An export ready to hand out: file name, bytes, MIME type and what its verification found."""

    name: str
    data: bytes
    mime: str
    check: str


def metadata(subnet: nn.Module, card: SupernetCard, precision: str = "fp32") -> dict:
    cfg: SubnetConfig = subnet.config
    return {
        "config": cfg.to_dict(),
        "config_compact": cfg.to_compact(),
        "precision": precision,
        "resolution": cfg.r,
        "supernet": card.name,
        "supernet_sha256": card.sha256,
        "width_mult": card.width_mult,
        "classes": list(card.classes),
        "mean": list(card.mean),
        "std": list(card.std),
        "input": f"N x 3 x {cfg.r} x {cfg.r}, RGB in [0, 1] normalised with mean/std",
        "load": "app.load_supernet(...).extract(SubnetConfig.from_dict(config)).load_state_dict(...)",
    }


def _check(reference: torch.Tensor, got: torch.Tensor, fmt: str) -> None:
    diff = (reference - got).abs().max().item()
    if not diff <= TOLERANCE:
        raise ExportError(f"{fmt} export does not reproduce the subnet (max abs difference {diff:.2e})")


@torch.no_grad()
def export_bytes(subnet: nn.Module, card: SupernetCard, fmt: str, verify: bool = True) -> Exported:
    """``subnet`` in format ``fmt``, verified (see the module's docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"export format: choose from {', '.join(FORMATS)}; got {fmt!r}")
    cfg: SubnetConfig = subnet.config
    subnet = subnet.eval()
    x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(0))
    reference = subnet(x)
    stem = f"ofa_subnet_{cfg.to_compact()}"
    meta = json.dumps(metadata(subnet, card), indent=2)
    same = f"re-loaded and checked against the live subnet (max abs difference ≤ {TOLERANCE:g})"
    if fmt == "state_dict":
        from safetensors.torch import load as st_load
        from safetensors.torch import save as st_save

        state = {k: v.detach().contiguous() for k, v in subnet.state_dict().items()}
        weights = st_save(state)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("model.safetensors", weights)
            z.writestr("config.json", meta)
        if verify:
            with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
                loaded = st_load(z.read("model.safetensors"))
                cfg2 = SubnetConfig.from_dict(json.loads(z.read("config.json"))["config"])
            clone = _empty_like(subnet)
            clone.load_state_dict(loaded)
            if cfg2 != cfg:
                raise ExportError("state_dict export: the config does not round-trip")
            _check(reference, clone(x), fmt)
        return Exported(f"{stem}.zip", buf.getvalue(), "application/zip", same)
    if fmt == "torchscript":
        scripted = torch.jit.trace(subnet, x[:1], check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf, _extra_files={"config.json": meta})
        data = buf.getvalue()
        if verify:
            _check(reference, torch.jit.load(io.BytesIO(data))(x), fmt)
        return Exported(f"{stem}.torchscript.pt", data, "application/octet-stream", same)
    if fmt == "pt2":
        batch = torch.export.Dim("batch", min=1, max=1024)
        ep = torch.export.export(subnet, (x,), dynamic_shapes=({0: batch},), strict=False)
        buf = io.BytesIO()
        torch.export.save(ep, buf, extra_files={"config.json": meta})
        data = buf.getvalue()
        if verify:
            _check(reference, torch.export.load(io.BytesIO(data)).module()(x), fmt)
        return Exported(f"{stem}.pt2", data, "application/octet-stream", same)
    from app import quantize

    try:
        if fmt == "onnx":
            data = _with_metadata(quantize.onnx_fp32(subnet), metadata(subnet, card))
            if verify:
                _check(reference, quantize.OnnxSubnet(data, cfg, "fp32")(x), fmt)
            return Exported(f"{stem}.onnx", data, "application/octet-stream", same + ", in onnxruntime")
        int8 = quantize.int8_subnet(subnet, card)  # the app's own int8 model (cached: Classify may have made it)
    except quantize.QuantizationError as exc:
        raise ExportError(str(exc)) from None
    images = verification_images(cfg, card)
    agreement = quantize.top1_agreement(subnet, int8, images)
    data = int8.data
    if agreement < INT8_MIN_AGREEMENT:
        raise ExportError(f"the int8 file agrees with the fp32 subnet on only {agreement:.1f}% of {len(images)} real images "
                          f"(at least {INT8_MIN_AGREEMENT:g}% needed); nothing was written")
    check = f"int8 top-1 = fp32 top-1 on {agreement:.1f}% of {len(images)} real images (bundled Imagenette val subset)"
    data = _with_metadata(data, {**metadata(subnet, card, "int8"), "verification": check})
    return Exported(f"{stem}.int8.onnx", data, "application/octet-stream", check)


def verification_images(cfg: SubnetConfig, card: SupernetCard) -> torch.Tensor:
    """The bundled real images int8 exports are verified on (``assets/measure``), preprocessed for ``cfg``."""
    from app.data import eval_transform, load_image
    from app.evaluate import MEASURE_DIR, labelled_images

    items = labelled_images(MEASURE_DIR, card) if MEASURE_DIR.is_dir() else []
    if not items:
        raise ExportError("int8 export: the bundled verification images (assets/measure) are missing")
    tf = eval_transform(cfg.r, card.mean, card.std)
    return torch.stack([tf(load_image(p)) for p, _ in items])


def _with_metadata(data: bytes, meta: dict) -> bytes:
    """The ONNX file with ``meta`` in its metadata properties (key ``ofa_explorer``, JSON)."""
    import onnx

    model = onnx.load_from_string(data)
    entry = model.metadata_props.add()
    entry.key, entry.value = "ofa_explorer", json.dumps(meta)
    return model.SerializeToString()


def _empty_like(subnet: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(subnet)
    with torch.no_grad():
        for p in clone.parameters():
            p.zero_()
    return clone


def export_to(subnet: nn.Module, card: SupernetCard, fmt: str, out: str | Path) -> tuple[Path, str]:
    """Write the export to ``out`` (a file, or a directory to put the default file name in); returns the path and
    what the verification found. Nothing is written when the export or its verification fails."""
    name, data, _, check = export_bytes(subnet, card, fmt)
    out = Path(out)
    if not out.exists() and not out.suffix:  # a folder to be (e.g. exports/): create it rather than write a file named so
        out.mkdir(parents=True)
    path = out / name if out.is_dir() else out
    atomic_write_bytes(path, data)
    return path, check
