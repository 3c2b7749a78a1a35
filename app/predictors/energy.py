"""Energy per inference: a documented first-order model, and carbon from a grid intensity.

* **Operation counts** (``op_energy_mj``) — Horowitz, "Computing's energy problem",
  ISSCC 2014, 45 nm figures: a 32-bit float multiply 3.7 pJ + add 0.9 pJ, so one fp32
  MAC ≈ 4.6 pJ; a 32-bit DRAM access ≈ 640 pJ. Assumptions: every weight is read from
  DRAM once per inference and every activation tensor is written once and read once
  (no on-chip reuse across layers), 4-byte words. A lower bound on real devices'
  overheads (control, caches, idle power), an upper bound on their data reuse. The counts
  come from :func:`app.costs.layer_costs` (words: weights + input + output elements).
"""

from __future__ import annotations

import numpy as np

from app.carbon import DEFAULT_GRID_G_PER_KWH, GRID_SOURCE  # noqa: F401  (the app's one grid default)

PJ_PER_MAC_FP32 = 4.6
PJ_PER_DRAM_WORD = 640.0
HOROWITZ = "Horowitz, ISSCC 2014 (45 nm): fp32 MAC 4.6 pJ, 32-bit DRAM access 640 pJ"


def op_energy_mj(macs, dram_words):
    """Energy (mJ) of one inference by operation counts: ``macs`` fp32 multiply-accumulates and ``dram_words`` 32-bit
    DRAM accesses (numbers or arrays; the one place this model is computed)."""
    return (np.asarray(macs, dtype=np.float64) * PJ_PER_MAC_FP32 + np.asarray(dram_words, dtype=np.float64) * PJ_PER_DRAM_WORD) * 1e-9


def carbon_g_per_1000(energy_mj: float, grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH) -> float:
    """Grams CO2e of 1,000 inferences at ``energy_mj`` each (1 kWh = 3.6e9 mJ)."""
    if grid_g_per_kwh < 0:
        raise ValueError("grid intensity must be non-negative")
    return energy_mj * 1000 / 3.6e9 * grid_g_per_kwh
