"""The viewer's own device as a hardware target: a latency model fitted on subnets timed in their browser.

The browser downloads a handful of *probe* subnets and times each one with onnxruntime-web (WASM, 1 thread). A probe
is the subnet's real ONNX graph with every weight replaced by a ``ConstantOfShape`` node (:func:`probe_model`): the
file is tens of kilobytes instead of tens of megabytes, onnxruntime folds the constants when it creates the session,
and the forward pass then does exactly the work of the real subnet (same operators, shapes and memory), so it takes
the same time. The whole profile is the runtime (~14 MB, once) and ~0.5 MB of probes.

:class:`DeviceLatencyModel` predicts a subnet's latency on that device as a non-negative combination of what the
subnet computes, layer kind by layer kind — pointwise and depthwise multiply-accumulates, squeeze-excite, activation
memory and a fixed cost per inference (:func:`layer_features`). Which features to use, and how many probes are
needed, was chosen by measurement (``benchmarks/device_latency.py``; ``docs/browser_runtime.md``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from app.costs import layer_costs
from app.predictors.encoding import ConfigArrays, encode
from app.space import EXPAND_CHOICES, KERNEL_CHOICES, MAX_DEPTH, NUM_BLOCKS, RESOLUTION_CHOICES, SubnetConfig

FEATURES = ("pointwise MACs", "depthwise MACs", "squeeze-excite MACs", "activation memory", "per inference")
_SCALE = np.array([1e6, 1e6, 1e6, 1e6, 1.0])  # features in M-units, so fitted coefficients are ms per M-unit
PROBE_SEED = 2020
MAX_PROBES = 32


# ------------------------------------------------------------------------------------------------ features
@lru_cache(maxsize=2)
def _feature_arrays(width_mult: float, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per resolution: the fixed layers' features (R, F) and each block's for every kernel x expand (R, 20, 3, 3, F)."""
    f = len(FEATURES)
    fixed = np.zeros((len(RESOLUTION_CHOICES), f))
    blocks = np.zeros((len(RESOLUTION_CHOICES), NUM_BLOCKS, len(KERNEL_CHOICES), len(EXPAND_CHOICES), f))
    for ri, r in enumerate(RESOLUTION_CHOICES):
        for ki, k in enumerate(KERNEL_CHOICES):
            for ei, e in enumerate(EXPAND_CHOICES):
                for layer in layer_costs(SubnetConfig.uniform(k, e, MAX_DEPTH, r), width_mult, num_classes):
                    v = np.zeros(f)
                    v[{"conv": 0, "linear": 0, "dwconv": 1, "se": 2}[layer.kind]] = layer.macs
                    v[3] = layer.in_elems + layer.out_elems
                    if layer.name.startswith("blocks."):
                        blocks[ri, int(layer.name.split(".")[1]), ki, ei] += v
                    elif ki == 0 and ei == 0:
                        fixed[ri] += v
        fixed[ri, 4] = 1.0
    fixed /= _SCALE
    blocks /= _SCALE
    for arr in (fixed, blocks):
        arr.setflags(write=False)
    return fixed, blocks


def layer_features(a: ConfigArrays, width_mult: float = 1.2, num_classes: int = 1000) -> np.ndarray:
    """(N, len(FEATURES)) per config: what it computes, by layer kind (millions; the last column is 1)."""
    fixed, blocks = _feature_arrays(width_mult, num_classes)
    ri = (a.r - RESOLUTION_CHOICES[0]) // 4
    per_block = blocks[ri[:, None], np.arange(NUM_BLOCKS)[None, :], a.k_idx, a.e_idx]
    return fixed[ri] + (per_block * a.active[..., None]).sum(axis=1)


# ------------------------------------------------------------------------------------------------ probes
def probe_configs(n: int = 12, seed: int = PROBE_SEED) -> tuple[SubnetConfig, ...]:
    """The subnets a browser times to profile itself: the smallest, the largest and ``n - 2`` seeded random ones
    whose resolutions are spread evenly over the space (so every size of work is covered)."""
    if not 2 <= n <= MAX_PROBES:
        raise ValueError(f"probes: between 2 and {MAX_PROBES}, got {n}")
    rng = random.Random(seed)
    spread = [RESOLUTION_CHOICES[round(i * (len(RESOLUTION_CHOICES) - 1) / max(n - 3, 1))] for i in range(n - 2)]
    rng.shuffle(spread)
    return (SubnetConfig.smallest(), SubnetConfig.largest(), *(SubnetConfig.random(rng, r=r) for r in spread))


def weightless(onnx_bytes: bytes) -> bytes:
    """The same ONNX graph with every float initializer replaced by a ``ConstantOfShape`` of its shape (1 / fan-in
    for weights, 0 for biases, so activations stay of order one): the same work per forward pass, a tiny file."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    kept, made = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            kept.append(init)
            continue
        dims = [int(d) for d in init.dims]
        value = 0.0 if len(dims) <= 1 else 1.0 / max(int(np.prod(dims[1:])), 1)
        shape = helper.make_tensor(f"{init.name}__shape", TensorProto.INT64, [len(dims)], dims)
        kept.append(shape)
        made.append(helper.make_node("ConstantOfShape", [shape.name], [init.name], name=f"{init.name}__fill",
                                     value=helper.make_tensor("value", TensorProto.FLOAT, [1], [value])))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = made + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


def probe_model(net, cfg: SubnetConfig) -> bytes:
    """``cfg``'s subnet of ``net`` as a weightless ONNX probe (see :func:`weightless`); ``net`` is not changed."""
    from app.quantize import onnx_fp32

    return weightless(onnx_fp32(net.extract(cfg, calibrate=False)))


# ------------------------------------------------------------------------------------------------ the model
class DeviceFitError(ValueError):
    """Latencies a device model cannot be fitted on (one line for people)."""


def _nnls(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Non-negative least squares, weighted (Lawson-Hanson active set; F is tiny)."""
    xw, yw = x * weights[:, None], y * weights
    f = x.shape[1]
    passive = np.zeros(f, dtype=bool)
    coef = np.zeros(f)
    for _ in range(3 * f):
        grad = xw.T @ (yw - xw @ coef)
        if passive.all() or grad[~passive].max(initial=0.0) <= 1e-12:
            break
        passive[np.argmax(np.where(passive, -np.inf, grad))] = True
        while True:
            z = np.zeros(f)
            z[passive] = np.linalg.lstsq(xw[:, passive], yw, rcond=None)[0]
            if (z[passive] > 0).all():
                coef = z
                break
            neg = passive & (z <= 0)
            step = np.min(coef[neg] / np.maximum(coef[neg] - z[neg], 1e-300))
            coef = coef + step * (z - coef)
            passive &= coef > 1e-12
            coef[~passive] = 0.0
    return coef


@dataclass(frozen=True)
class DeviceLatencyModel:
    """Latency (ms) of any subnet on one device: ``features @ coef``, fitted on that device's measured probes."""

    label: str  # e.g. "Chrome on Android"
    backend: str  # e.g. "WASM, 1 thread"
    coef: tuple[float, ...]
    fit_mape_percent: float  # on the probes it was fitted on
    probes: int
    width_mult: float = 1.2

    @classmethod
    def fit(cls, cfgs: Sequence[SubnetConfig], latencies_ms: Sequence[float], *, label: str, backend: str = "WASM, 1 thread",
            width_mult: float = 1.2) -> "DeviceLatencyModel":
        """Fit on measured ``latencies_ms`` of ``cfgs`` (relative error is what is minimised: weights 1 / latency)."""
        y = np.asarray(latencies_ms, dtype=np.float64)
        if len(cfgs) != len(y) or len(y) < 3:
            raise DeviceFitError("A device profile needs at least 3 measured subnets; nothing was kept.")
        if not np.isfinite(y).all() or (y <= 0).any():
            raise DeviceFitError("A device profile needs positive, finite latencies; nothing was kept.")
        x = layer_features(encode(cfgs), width_mult)
        coef = _nnls(x, y, 1.0 / y)
        pred = x @ coef
        if not (pred > 0).all():
            raise DeviceFitError("These latencies do not fit a device model (a subnet came out at zero); nothing was kept.")
        mape = float(np.mean(np.abs(pred - y) / y) * 100.0)
        return cls(label, backend, tuple(float(c) for c in coef), mape, len(y), width_mult)

    def batch(self, a: ConfigArrays) -> np.ndarray:
        return layer_features(a, self.width_mult) @ np.asarray(self.coef)

    def note(self, r: int) -> str:
        return ""

    @property
    def source(self) -> str:
        return (f"measured in your browser ({self.backend}): a model fitted on {self.probes} subnets timed there "
                f"(fit error {self.fit_mape_percent:.1f}%)")


# ------------------------------------------------------------------------------------------------ profiled devices
MAX_DEVICES = 500  # profiled devices kept in memory (least recently used go first); gone on restart
DEVICE_PREFIX = "device-"


class _Devices:
    """The devices profiled since the server started, by name: bounded, each entry immutable once added."""

    def __init__(self, capacity: int = MAX_DEVICES) -> None:
        import threading
        from collections import OrderedDict

        self.capacity = capacity
        self._items: "OrderedDict[str, tuple]" = OrderedDict()
        self._lock = threading.Lock()

    def add(self, model: DeviceLatencyModel):
        """Register ``model``; returns its hardware target (named by the model's content, so a repeat is one entry)."""
        import hashlib

        from app.predictors.records import HardwareTarget
        from app.space import RESOLUTION_CHOICES as R

        digest = hashlib.sha256(repr((model.label, model.backend, model.coef, model.probes)).encode()).hexdigest()[:10]
        target = HardwareTarget(name=DEVICE_PREFIX + digest, label=f"This device: {model.label}", kind="measured",
                                source=model.source, resolutions=(R[0], R[-1]), width_mult=model.width_mult)
        with self._lock:
            self._items[target.name] = (target, model)
            self._items.move_to_end(target.name)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return target

    def get(self, name: str):
        with self._lock:
            item = self._items.get(name)
            if item is not None:
                self._items.move_to_end(name)
            return item

    def __len__(self) -> int:
        return len(self._items)


DEVICES = _Devices()


def is_device(name: str) -> bool:
    return isinstance(name, str) and name.startswith(DEVICE_PREFIX)
