"""Energy per inference: a documented first-order model, and carbon from a grid intensity.

Two models, chosen per hardware target:

* **Operation counts** (``op_energy_mj``) — Horowitz, "Computing's energy problem",
  ISSCC 2014, 45 nm figures: a 32-bit float multiply 3.7 pJ + add 0.9 pJ, so one fp32
  MAC ≈ 4.6 pJ; a 32-bit DRAM access ≈ 640 pJ. Assumptions: every weight is read from
  DRAM once per inference and every activation tensor is written once and read once
  (no on-chip reuse across layers), 4-byte words. A lower bound on real devices'
  overheads (control, caches, idle power), an upper bound on their data reuse.
* **Power × latency** (``power_energy_mj``) — a device's typical active power (cited
  per target in :mod:`app.predictors.hardware`) times the predicted latency.
"""

from __future__ import annotations

import numpy as np

from app.costs import layer_costs
from app.space import SubnetConfig

PJ_PER_MAC_FP32 = 4.6
PJ_PER_DRAM_WORD = 640.0
HOROWITZ = "Horowitz, ISSCC 2014 (45 nm): fp32 MAC 4.6 pJ, 32-bit DRAM access 640 pJ"
DEFAULT_GRID_G_PER_KWH = 475.0  # IEA 2019 world average electricity carbon intensity (g CO2e/kWh)
GRID_SOURCE = "IEA, Global Energy & CO2 Status Report 2019: world average 475 g CO2e/kWh"


def op_energy_mj(cfg: SubnetConfig, width_mult: float = 1.2, num_classes: int = 1000) -> tuple[float, float, float]:
    """(total, compute, memory) energy in millijoules for one inference, by operation counts."""
    layers = layer_costs(cfg, width_mult, num_classes)
    macs = sum(layer.macs for layer in layers)
    words = sum(layer.params + layer.in_elems + layer.out_elems for layer in layers)
    compute = macs * PJ_PER_MAC_FP32 * 1e-9
    memory = words * PJ_PER_DRAM_WORD * 1e-9
    return compute + memory, compute, memory


def power_energy_mj(latency_ms: np.ndarray | float, watts: float) -> np.ndarray | float:
    """Energy (mJ) of running ``latency_ms`` at ``watts`` (W × ms = mJ)."""
    return np.asarray(latency_ms) * watts if isinstance(latency_ms, np.ndarray) else latency_ms * watts


def carbon_g_per_1000(energy_mj: float, grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH) -> float:
    """Grams CO2e of 1,000 inferences at ``energy_mj`` each (1 kWh = 3.6e9 mJ)."""
    if grid_g_per_kwh < 0:
        raise ValueError("grid intensity must be non-negative")
    return energy_mj * 1000 / 3.6e9 * grid_g_per_kwh
