"""GPU latency from HELP's measurements (Lee et al., NeurIPS 2021; MIT): a fitted linear model.

HELP measured 5,000 random OFA-MBv3 (w1.2) subnets on four GPUs at batch 1, 32 and 64.
Model per (GPU, batch): latency = fixed(r) + Σ over active blocks of
[a(block, k, e) + b(block, k, e) · (r / 224)²] — a per-layer cost that is partly
constant (kernel launches) and partly proportional to the feature-map area — fitted by
ridge regression on 80% of the subnets; the held-out MAPE on the other 20% is stored
with the coefficients (``pretrained/latency/help_gpu.json``, made by
``scripts/bundle_reference.py``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from app.predictors.encoding import ConfigArrays
from app.predictors.records import HardwareTarget
from app.space import NUM_BLOCKS, RESOLUTION_CHOICES

from app.paths import PRETRAINED

HELP_FILE: Path = PRETRAINED / "latency" / "help_gpu.json"
GPUS = {"2080ti": "NVIDIA RTX 2080 Ti", "titan_rtx": "NVIDIA Titan RTX", "titan_xp": "NVIDIA Titan Xp", "v100": "NVIDIA V100"}
BATCHES = (1, 32, 64)
HELP_RANGE = (128, 224)  # HELP sampled r in 128..224 step 4 (1,554 of its 5,000 subnets below 160)


def features(a: ConfigArrays) -> np.ndarray:
    """(N, 25 + 2·180) design matrix: resolution one-hot, then per (block, k, e) active and active·(r/224)²."""
    n = len(a)
    res = np.zeros((n, len(RESOLUTION_CHOICES)))
    res[np.arange(n), (a.r - RESOLUTION_CHOICES[0]) // 4] = 1.0
    slot = np.arange(NUM_BLOCKS)[None, :] * 9 + a.k_idx * 3 + a.e_idx  # (N, 20)
    onehot = np.zeros((n, NUM_BLOCKS * 9))
    rows = np.repeat(np.arange(n), NUM_BLOCKS)
    onehot[rows, slot.ravel()] = a.active.ravel().astype(np.float64)
    area = ((a.r / 224.0) ** 2)[:, None]
    return np.concatenate([res, onehot, onehot * area], axis=1)


class HelpModel:
    """Latency (ms) of configs on one GPU at one batch size."""

    def __init__(self, name: str, coef: np.ndarray, mape: float) -> None:
        self.name = name
        self.coef = coef
        self.coef.setflags(write=False)
        self.mape = mape

    def batch(self, a: ConfigArrays) -> np.ndarray:
        out = features(a) @ self.coef
        outside = (a.r < HELP_RANGE[0]) | (a.r > HELP_RANGE[1])
        return np.where(outside, np.nan, out)

    def note(self, r: int) -> str:
        if r < HELP_RANGE[0] or r > HELP_RANGE[1]:
            return f"HELP measured {HELP_RANGE[0]}-{HELP_RANGE[1]} px only; no latency at {r} px"
        return f"fitted to HELP's measurements; held-out MAPE {self.mape:.1f}%"


@lru_cache(maxsize=1)
def targets() -> tuple[tuple[HardwareTarget, HelpModel], ...]:
    if not HELP_FILE.is_file():
        return ()
    doc = json.loads(HELP_FILE.read_text("utf-8"))
    out = []
    for key, m in sorted(doc["models"].items()):
        gpu, batch = key.rsplit("_", 1)
        name = f"gpu-{gpu}-b{batch}"
        model = HelpModel(name, np.asarray(m["coef"], dtype=np.float64), float(m["heldout_mape"]))
        target = HardwareTarget(name, f"{GPUS.get(gpu, gpu)}, batch {batch}", "published",
                                f"HELP measurements (Lee et al., NeurIPS 2021, MIT), {GPUS.get(gpu, gpu)} batch {batch}; "
                                f"ridge fit, held-out MAPE {m['heldout_mape']:.1f}%", HELP_RANGE)
        out.append((target, model))
    return tuple(out)
