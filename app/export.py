"""Export an extracted subnet: state dict + JSON, TorchScript, ``torch.export`` (.pt2), ONNX (optional).

Every export is re-loaded and checked against the live subnet's output (max abs
difference ≤ 1e-4) before it is handed out. Files are written atomically.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from app.space import SubnetConfig
from app.card import SupernetCard
from app.weights import atomic_write_bytes

FORMATS = ("state_dict", "torchscript", "pt2", "onnx")
TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that failed or did not reproduce the subnet's outputs."""


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def metadata(subnet: nn.Module, card: SupernetCard) -> dict:
    cfg: SubnetConfig = subnet.config
    return {
        "config": cfg.to_dict(),
        "config_compact": cfg.to_compact(),
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
def export_bytes(subnet: nn.Module, card: SupernetCard, fmt: str, verify: bool = True) -> tuple[str, bytes, str]:
    """(file name, bytes, MIME type) of ``subnet`` in format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"export format: choose from {', '.join(FORMATS)}; got {fmt!r}")
    cfg: SubnetConfig = subnet.config
    subnet = subnet.eval()
    x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(0))
    reference = subnet(x)
    stem = f"ofa_subnet_{cfg.to_compact()}"
    meta = json.dumps(metadata(subnet, card), indent=2)
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
        return f"{stem}.zip", buf.getvalue(), "application/zip"
    if fmt == "torchscript":
        scripted = torch.jit.trace(subnet, x[:1], check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf, _extra_files={"config.json": meta})
        data = buf.getvalue()
        if verify:
            _check(reference, torch.jit.load(io.BytesIO(data))(x), fmt)
        return f"{stem}.torchscript.pt", data, "application/octet-stream"
    if fmt == "pt2":
        batch = torch.export.Dim("batch", min=1, max=1024)
        ep = torch.export.export(subnet, (x,), dynamic_shapes=({0: batch},), strict=False)
        buf = io.BytesIO()
        torch.export.save(ep, buf, extra_files={"config.json": meta})
        data = buf.getvalue()
        if verify:
            _check(reference, torch.export.load(io.BytesIO(data)).module()(x), fmt)
        return f"{stem}.pt2", data, "application/octet-stream"
    # onnx
    if not onnx_available():
        raise ExportError("ONNX export needs the optional packages onnx and onnxscript (pip install onnx onnxscript)")
    import contextlib

    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress
        path = Path(d) / "model.onnx"
        torch.onnx.export(subnet, (x,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, external_data=False)
        data = path.read_bytes()  # one self-contained file (the weights inside, not in a model.onnx.data beside it)
    if verify:
        got = _run_onnx(data, x)
        if got is not None:
            _check(reference, got, fmt)
    return f"{stem}.onnx", data, "application/octet-stream"


def _run_onnx(data: bytes, x: torch.Tensor) -> torch.Tensor:
    """Outputs of an ONNX model (bytes) on ``x`` with onnxruntime; without it, a structural check only (returns None)."""
    try:
        import onnxruntime as ort
    except ImportError:
        import onnx

        onnx.checker.check_model(onnx.load_from_string(data))
        return None
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def _empty_like(subnet: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(subnet)
    with torch.no_grad():
        for p in clone.parameters():
            p.zero_()
    return clone


def export_to(subnet: nn.Module, card: SupernetCard, fmt: str, out: str | Path) -> Path:
    """Write the export to ``out`` (a file, or a directory to put the default file name in)."""
    name, data, _ = export_bytes(subnet, card, fmt)
    out = Path(out)
    if not out.exists() and not out.suffix:  # a folder to be (e.g. exports/): create it rather than write a file named so
        out.mkdir(parents=True)
    path = out / name if out.is_dir() else out
    atomic_write_bytes(path, data)
    return path
