"""Train once vs search per device: OFA's Table 1 design costs, scaled to N scenarios and a grid.

Source: Cai et al., "Once-for-All", ICLR 2020, Table 1 (ImageNet, Samsung Note10
scenarios). Per-method costs in GPU-hours as functions of N, the number of deployment
scenarios; the paper reports totals at N = 40 (reproduced by :func:`gpu_hours`):

====================  ===================  =====================  ==============  ================
method                search (GPU-h)       training (GPU-h)       total, N = 40   CO2e, N = 40
====================  ===================  =====================  ==============  ================
OFA                   40                   1,200                  1.2k            0.34k lbs
ProxylessNAS          200 N                300 N                  20k             5.7k lbs
FBNet-C               216 N                360 N                  23k             6.5k lbs
MnasNet               40,000 N             --                     1,600k          453.8k lbs
====================  ===================  =====================  ==============  ================

The paper's CO2e column implies 0.2836 lbs CO2e per GPU-hour (e.g. 453.8k / 1,600k),
the conversion of Strubell et al. (ACL 2019), whose US-average grid is 0.954 lbs CO2e
per kWh (PUE 1.58 included): 0.2836 / 0.954 = 0.297 kWh per GPU-hour. We keep that
energy per GPU-hour and multiply by the user's grid intensity.
"""

from __future__ import annotations

from dataclasses import dataclass

LBS_PER_KG = 2.20462
LBS_CO2E_PER_GPU_HOUR = 453.8e3 / 1.6e6  # OFA Table 1, MnasNet row: 0.2836
STRUBELL_LBS_PER_KWH = 0.954  # Strubell et al. 2019, US average (EPA 2018)
KWH_PER_GPU_HOUR = LBS_CO2E_PER_GPU_HOUR / STRUBELL_LBS_PER_KWH  # 0.297
# The app's one default grid intensity (the Carbon page and every per-inference carbon figure): the US average the
# paper's Table 1 used, so that the default reproduces the paper.
DEFAULT_GRID_G_PER_KWH = STRUBELL_LBS_PER_KWH / LBS_PER_KG * 1000  # 432.7 g/kWh
GRID_SOURCE = "US average 0.954 lbs CO2e/kWh (EPA 2018) as used by Strubell et al. 2019 and OFA's Table 1: 432.7 g CO2e/kWh"
STRUBELL_TRANSFORMER_NAS_LBS = 626_155  # Strubell et al. 2019, NAS of a Transformer (for scale)
SOURCE = "Cai et al., Once-for-All, ICLR 2020, Table 1; CO2e conversion of Strubell et al., ACL 2019"


@dataclass(frozen=True)
class DesignCost:
    """GPU-hours of one method as a + b * N (search and training combined)."""

    method: str
    fixed_gpu_hours: float
    per_scenario_gpu_hours: float
    note: str

    def gpu_hours(self, n: int) -> float:
        return self.fixed_gpu_hours + self.per_scenario_gpu_hours * n


METHODS: tuple[DesignCost, ...] = (
    DesignCost("OFA (train once)", 40 + 1200, 0, "40 GPU-h search + 1,200 GPU-h training, whatever N"),
    DesignCost("ProxylessNAS", 0, 200 + 300, "200N search + 300N training"),
    DesignCost("FBNet-C", 0, 216 + 360, "216N search + 360N training"),
    DesignCost("MnasNet", 0, 40_000, "40,000N search (training included)"),
)


def gpu_hours(method: DesignCost, n: int) -> float:
    return method.gpu_hours(n)


def co2e_kg(gpu_h: float, grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH) -> float:
    """kg CO2e of ``gpu_h`` GPU-hours on a grid of ``grid_g_per_kwh`` g CO2e per kWh."""
    if grid_g_per_kwh < 0 or gpu_h < 0:
        raise ValueError("GPU-hours and grid intensity must be non-negative")
    return gpu_h * KWH_PER_GPU_HOUR * grid_g_per_kwh / 1000


def cost_table(n: int, grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH) -> list[dict]:
    """Rows (method, N, GPU-hours, kWh, kg CO2e, lbs CO2e, note) for ``n`` deployment scenarios."""
    if not isinstance(n, int) or n < 1:
        raise ValueError("N (deployment scenarios) must be a positive integer")
    rows = []
    for m in METHODS:
        h = m.gpu_hours(n)
        kg = co2e_kg(h, grid_g_per_kwh)
        rows.append({"method": m.method, "N": n, "gpu_hours": h, "kwh": h * KWH_PER_GPU_HOUR,
                     "co2e_kg": kg, "co2e_lbs": kg * LBS_PER_KG, "note": m.note})
    return rows
