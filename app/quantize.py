"""Precision: an extracted subnet as ONNX, fp32 or int8, and the runtime that runs it (onnxruntime, CPU).

* :func:`onnx_fp32` — the subnet with BN folded into its convolutions, as one self-contained ONNX file
  (dynamic batch; the squeeze-excite and head poolings as ``GlobalAveragePool``, which has an int8 kernel).
* :func:`quantize_int8` — onnxruntime's static post-training quantization of that file: QDQ format,
  per-channel symmetric int8 weights, uint8 activations (the U8S8 kernels of x86 CPUs with VNNI), ranges
  calibrated (min-max) on the same bundled training images as the fast BN path; the first convolution and the
  classifier stay fp32 (:data:`KEEP_FP32`: the remedy that measured best). Before and after it, the rewrites of
  :mod:`app.int8_rewrites` put the graph on onnxruntime's fast int8 kernels (depthwise channels padded to a multiple
  of 16, squeeze-excite gates folded into their convolutions, hard-swish as int8 add and multiply). What was measured
  for the alternatives (per-tensor weights, squeeze-excite or depthwise kept in fp32, more calibration images,
  int8 activations) is in ``docs/measured.md`` ("int8").
* :class:`OnnxSubnet` — an onnxruntime session over such a file, called like the PyTorch subnet.

Quantizing never touches the supernet: it works on an extracted subnet's exported copy.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from app import int8_rewrites
from app.space import SubnetConfig

PRECISIONS = ("fp32", "int8")
OPSET = 17
# Layers kept in fp32: the stem (it reads the image itself) and the classifier. On the full val set, with the graph
# rewrites, the int8 change of the largest @224 / d3 e6 k5 @128 / d4 e4 k5 @128 goes from -0.18 / -0.20 / -0.21 points
# (every layer int8) to +0.08 / -0.10 / +0.12 (scripts/measure_int8.py remedies; docs/measured.md).
KEEP_FP32 = ("/stem/conv/Conv", "/classifier/Gemm")


class QuantizationError(RuntimeError):
    """A quantization that failed or does not reproduce the subnet well enough (one line for people)."""


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _require() -> None:
    if not onnxruntime_available():
        raise QuantizationError("int8 needs the packages onnx and onnxruntime (pip install -r requirements.txt)")


# ----------------------------------------------------------------------------------------------- fp32 graph
@torch.no_grad()
def onnx_fp32(subnet: nn.Module) -> bytes:
    """``subnet`` (eval mode, BN statistics final) as ONNX bytes: BN folded, input ``image`` N x 3 x r x r,
    output ``logits``. Uses the TorchScript-based exporter (0.3 s for the largest subnet; the dynamo exporter
    takes 8 s and gives the same graph for this network)."""
    _require()
    cfg: SubnetConfig = subnet.config
    folded = subnet.fold_batchnorm() if hasattr(subnet, "fold_batchnorm") else subnet.eval()
    x = torch.zeros(1, 3, cfg.r, cfg.r)
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice of itself
        path = Path(d) / "model.onnx"
        torch.onnx.export(folded, (x,), str(path), input_names=["image"], output_names=["logits"], opset_version=OPSET,
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
        data = path.read_bytes()
    return _global_pools(data)


def _global_pools(data: bytes) -> bytes:
    """Replace every ``ReduceMean`` over H and W (keepdims) by the equivalent ``GlobalAveragePool``: onnxruntime
    quantizes the latter (QLinearGlobalAveragePool) and leaves the former in float between two conversions."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    inits = {i.name: i for i in model.graph.initializer}
    nodes = []
    for n in model.graph.node:
        if n.op_type == "ReduceMean":
            attrs = {a.name: a for a in n.attribute}
            axes = list(attrs["axes"].ints) if "axes" in attrs else (
                numpy_helper.to_array(inits[n.input[1]]).tolist() if len(n.input) > 1 and n.input[1] in inits else None)
            keep = attrs["keepdims"].i if "keepdims" in attrs else 1
            if axes is not None and sorted(a % 4 for a in axes) == [2, 3] and keep == 1:
                nodes.append(helper.make_node("GlobalAveragePool", [n.input[0]], list(n.output), name=f"{n.name}_global_pool"))
                continue
        nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


# ----------------------------------------------------------------------------------------------- int8
def calibration_images(cfg: SubnetConfig, card, n: int | None = None) -> Tensor:
    """The images the int8 ranges are calibrated on: the fast BN path's bundled training images, as many as it
    uses for ``cfg`` (36 for the largest subnet at r=224, up to 96 for small ones)."""
    from app.calibrate import calibration_batch, fast_calibration_size

    n = n or fast_calibration_size(cfg, card.width_mult, card.num_classes)
    return calibration_batch(cfg.r, card.mean, card.std, n).contiguous()


def quantize_int8(fp32: bytes, images: Tensor, *, per_channel: bool = True, exclude: tuple[str, ...] = (),
                  batch: int = 16, pad_depthwise: bool = True) -> bytes:
    """Static int8 quantization (QDQ) of the ONNX model ``fp32`` with activation ranges from ``images``
    (N x 3 x r x r, preprocessed), with :mod:`app.int8_rewrites` applied before and after. ``exclude``: node names
    kept in fp32. ``pad_depthwise=False`` skips the channel padding (only onnxruntime's native CPU kernels gain from it)."""
    _require()
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    arrays = [images[i : i + batch].numpy() for i in range(0, len(images), batch)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(arrays)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"image": x}

    ort.set_default_logger_severity(3)  # the quantizer's advice to pre-process (done) and unused-initializer notes
    with tempfile.TemporaryDirectory() as d, _quiet():
        src, pre, out = Path(d) / "fp32.onnx", Path(d) / "pre.onnx", Path(d) / "int8.onnx"
        model = onnx.load_from_string(fp32)
        if pad_depthwise:
            int8_rewrites.pad_depthwise_channels(model)
        int8_rewrites.fold_gate_into_conv(model)
        src.write_bytes(model.SerializeToString())
        # shape inference only: onnx's optimiser would split HardSwish into HardSigmoid x Mul (slower in int8)
        quant_pre_process(str(src), str(pre), skip_optimization=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude))
        model = onnx.load(str(out))
    int8_rewrites.hard_swish_as_int8(model)
    return model.SerializeToString()


@contextlib.contextmanager
def _quiet():
    """Silence the quantizer's Python logging and warnings (it advises on things already done)."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def onnx_int8(subnet: nn.Module, card, images: Tensor | None = None, *, for_browser: bool = False) -> bytes:
    """``subnet`` as an int8 ONNX file (see :func:`quantize_int8`); ``images`` default: :func:`calibration_images`.
    ``for_browser``: the file for onnxruntime-web's WASM build, without the depthwise channel padding, which only adds
    work there (+8% for the smallest subnet; docs/browser_runtime.md, "int8 in the browser")."""
    try:
        fp32 = onnx_fp32(subnet)
        return quantize_int8(fp32, images if images is not None else calibration_images(subnet.config, card), exclude=KEEP_FP32,
                             pad_depthwise=not for_browser)
    except QuantizationError:
        raise
    except Exception as exc:  # onnx / onnxruntime internals: one line for people
        raise QuantizationError(f"int8 quantization of this subnet failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None


# ----------------------------------------------------------------------------------------------- runtime
class OnnxSubnet:
    """An ONNX subnet (fp32 or int8) in an onnxruntime CPU session, called like the PyTorch subnet:
    ``model(x)`` with x N x 3 x r x r (float) returns the logits as a tensor. Read-only once built."""

    def __init__(self, data: bytes, config: SubnetConfig, precision: str, threads: int = 1) -> None:
        _require()
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ValueError(f"precision: choose from {', '.join(PRECISIONS)}; got {precision!r}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        self.data = data  # the ONNX file (read-only)
        self.config = config
        self.precision = precision
        self.size_bytes = len(data)
        self.threads = threads
        self._lock = threading.Lock()

    def __call__(self, x: Tensor) -> Tensor:
        arr = np.ascontiguousarray(x.detach().float().numpy())
        with self._lock:  # one session is not run concurrently: sessions are cheap, answers must not interleave
            out = self.session.run(None, {"image": arr})[0]
        return torch.from_numpy(out)

    def latency_ms(self, repeats: int = 20, warmup: int = 3) -> float:
        """Median wall time (ms) of one image on this machine."""
        import time

        x = {"image": np.random.default_rng(0).random((1, 3, self.config.r, self.config.r), dtype=np.float32)}
        times = []
        with self._lock:
            for i in range(warmup + repeats):
                t = time.perf_counter()
                self.session.run(None, x)
                if i >= warmup:
                    times.append(time.perf_counter() - t)
        return float(np.median(times) * 1000)


def top1_agreement(a, b, images: Tensor, batch: int = 32) -> float:
    """Share (%) of ``images`` on which the callables ``a`` and ``b`` give the same top-1 class."""
    same = 0
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = images[i : i + batch]
            same += int((a(x).argmax(1) == b(x).argmax(1)).sum())
    return 100.0 * same / len(images)


# ----------------------------------------------------------------------------------------------- the app's cache
_lock = threading.Lock()
_models: "OrderedDict[tuple, OnnxSubnet]" = OrderedDict()
MODEL_CACHE_ENTRIES = 8  # int8 sessions kept per process (largest subnet: ~10 MB each)


def _statistics_digest(subnet: nn.Module) -> str:
    """A fingerprint of the subnet's BN statistics (1 ms): two subnets of one config calibrated differently differ."""
    import hashlib

    h = hashlib.sha256()
    for name, buf in subnet.named_buffers():
        h.update(name.encode())
        h.update(buf.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def int8_subnet(subnet: nn.Module, card, *, for_browser: bool = False) -> OnnxSubnet:
    """The int8 version of ``subnet`` as a session, from a bounded process-wide cache keyed by the weights' sha256, the
    config, the subnet's BN statistics and ``for_browser`` (see :func:`onnx_int8`; quantization takes seconds; a subnet
    seen before is instant)."""
    key = (card.sha256, subnet.config.to_compact(), _statistics_digest(subnet), for_browser) if getattr(card, "sha256", "") else None
    if key is not None:
        with _lock:
            if key in _models:
                _models.move_to_end(key)
                return _models[key]
    model = OnnxSubnet(onnx_int8(subnet, card, for_browser=for_browser), subnet.config, "int8")
    if key is not None:
        with _lock:
            _models[key] = model
            while len(_models) > MODEL_CACHE_ENTRIES:
                _models.popitem(last=False)
    return model
