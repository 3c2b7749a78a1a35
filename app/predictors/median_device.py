"""The median device of a room (presenter mode): a reference device latency model scaled to what the room measured.

Every device in a room times one subnet, the presenter's. One latency per device cannot fit a device model of its own
(:class:`~app.predictors.device.DeviceLatencyModel` needs several subnets), but it can *scale* one: take a reference
model fitted on many subnets timed in one browser, and multiply its coefficients by the room's median measured
latency over the reference's prediction for the presenter's subnet. The scaled model predicts exactly the median for
the presenter's subnet and keeps the reference's proportions between subnets (a device twice as slow is assumed twice
as slow on every subnet) — what a search needs to specialise a subnet for the median device.

The reference is ``pretrained/latency/browser_wasm_reference.json``: a ``DeviceLatencyModel``'s fields, written by
``benchmarks/device_latency.py --write-reference`` (headless chromium, WASM, 1 thread).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.paths import PRETRAINED
from app.predictors.device import FEATURES, DeviceLatencyModel
from app.predictors.encoding import encode
from app.space import SubnetConfig

REFERENCE_FILE = PRETRAINED / "latency" / "browser_wasm_reference.json"
MEDIAN_STEP_MS = 0.1  # the median is rounded to 0.1 ms (as shown): one model, and one cached search, per shown median
LABEL = "the median device in the room"


@dataclass(frozen=True)
class Reference:
    """The reference device model and where it comes from (one line for people)."""

    model: DeviceLatencyModel
    source: str


def load_reference(path: Path = REFERENCE_FILE) -> Reference:
    """The reference device model in ``path``; ValueError (one line) if it is missing or malformed."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
        features = tuple(doc.get("features", FEATURES))
        coef = tuple(float(c) for c in doc["coef"])
        label = str(doc.get("label", "a reference browser")).removeprefix("reference: ")
        model = DeviceLatencyModel(label=label, backend=str(doc.get("backend", "WASM, 1 thread")), coef=coef,
                                   fit_mape_percent=float(doc.get("fit_mape_percent", math.nan)),
                                   probes=int(doc.get("probes", 0)), width_mult=float(doc.get("width_mult", 1.2)))
        held_out = doc.get("held_out_mape_percent")
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"the reference device model {Path(path).name} cannot be read ({type(exc).__name__})") from None
    if features != FEATURES:
        raise ValueError(f"the reference device model {Path(path).name} has other features than the device model's")
    if len(coef) != len(FEATURES) or not all(math.isfinite(c) and c >= 0 for c in coef) or not any(coef):
        raise ValueError(f"the reference device model {Path(path).name} needs {len(FEATURES)} non-negative coefficients")
    error = f", {float(held_out):.1f}% error on held-out subnets" if isinstance(held_out, (int, float)) else ""
    return Reference(model, f"the reference browser's model ({label}, {model.backend}{error}) scaled")


@lru_cache(maxsize=1)
def reference_model() -> Reference:
    """The bundled reference device model (read once)."""
    return load_reference()


def median_device_model(reference: DeviceLatencyModel, cfg: SubnetConfig, median_ms: float) -> DeviceLatencyModel:
    """``reference`` scaled so that it predicts ``median_ms`` (rounded to :data:`MEDIAN_STEP_MS`) for ``cfg``; raises
    ValueError for a median that is not a positive finite number."""
    if isinstance(median_ms, bool) or not (isinstance(median_ms, (int, float)) and math.isfinite(median_ms) and median_ms > 0):
        raise ValueError("the median latency must be a positive number of milliseconds")
    predicted = float(reference.batch(encode([cfg]))[0])
    if not (math.isfinite(predicted) and predicted > 0):
        raise ValueError("the reference device model has no latency for this subnet")
    median = max(round(median_ms / MEDIAN_STEP_MS) * MEDIAN_STEP_MS, MEDIAN_STEP_MS)
    scale = median / predicted
    return DeviceLatencyModel(label=LABEL, backend=reference.backend, coef=tuple(c * scale for c in reference.coef),
                              fit_mape_percent=reference.fit_mape_percent, probes=reference.probes,
                              width_mult=reference.width_mult)
