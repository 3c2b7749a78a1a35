"""Energy per inference: two documented first-order models, and carbon from a grid intensity.

* **Operation counts** (``op_energy_mj``) — Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm
  figures. fp32: a float multiply 3.7 pJ + add 0.9 pJ, so one MAC ≈ 4.6 pJ; a 32-bit DRAM access ≈ 640 pJ.
  int8: an 8-bit integer multiply 0.2 pJ + a 32-bit integer add (the accumulator) 0.1 pJ = 0.3 pJ per MAC; an
  8-bit word from DRAM a quarter of the 32-bit access, 160 pJ. Assumptions: every weight is read from DRAM once
  per inference and every activation tensor is written once and read once (no on-chip reuse across layers), one
  word per element. A lower bound on real devices' overheads (control, caches, idle power), an upper bound on
  their data reuse. The counts come from :func:`app.costs.layer_costs` (words: weights + input + output elements).
  The same on every device: it counts the subnet's work, not a device's.
* **Device power × latency** (``device_energy_mj``) — each target's own figure: its latency times the active
  power of that device (:data:`DEVICE_POWER`, each with its source and whether it is rated, estimated or assumed).
  Differs between devices for the same subnet; needs a latency at that precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.carbon import DEFAULT_GRID_G_PER_KWH, GRID_SOURCE  # noqa: F401  (the app's one grid default)

PJ_PER_MAC = {"fp32": 4.6, "int8": 0.3}
PJ_PER_DRAM_WORD = {"fp32": 640.0, "int8": 160.0}
HOROWITZ = {
    "fp32": "Horowitz, ISSCC 2014 (45 nm): fp32 MAC 4.6 pJ, 32-bit DRAM access 640 pJ",
    "int8": "Horowitz, ISSCC 2014 (45 nm): int8 MAC 0.3 pJ (8-bit multiply + 32-bit add), 8-bit DRAM access 160 pJ",
}


def op_energy_mj(macs, dram_words, precision: str = "fp32"):
    """Energy (mJ) of one inference by operation counts: ``macs`` multiply-accumulates and ``dram_words`` DRAM
    accesses of one element each, at ``precision`` (numbers or arrays; the one place this model is computed)."""
    if precision not in PJ_PER_MAC:
        raise ValueError(f"precision: choose from {', '.join(PJ_PER_MAC)}; got {precision!r}")
    return (np.asarray(macs, dtype=np.float64) * PJ_PER_MAC[precision]
            + np.asarray(dram_words, dtype=np.float64) * PJ_PER_DRAM_WORD[precision]) * 1e-9


@dataclass(frozen=True)
class DevicePower:
    """A device's active power while it runs the network, with where the figure comes from."""

    watts: float
    kind: str  # "rated" (a vendor's specification), "estimate" (a vendor's estimate for a related design), "assumed"
    source: str


_NVIDIA = "NVIDIA's rated total board power"
DEVICE_POWER: dict[str, DevicePower] = {
    "note10": DevicePower(2.0, "assumed", "one big phone CPU core under load: order of the active power AnandTech measured for "
                          "Cortex-A76-class cores in SPEC2006 (Snapdragon 855 preview, 2019)"),
    "ultra96": DevicePower(7.9, "estimate", "AMD's estimated overall power of a larger DPU (B3136 on the Kria K26 SOM, "
                           "KV260 NLP SmartVision documentation); the Ultra96-v2's B2304 is smaller"),
    "gpu-2080ti": DevicePower(250.0, "rated", f"{_NVIDIA}, RTX 2080 Ti (reference design)"),
    "gpu-titan_rtx": DevicePower(280.0, "rated", f"{_NVIDIA}, Titan RTX"),
    "gpu-titan_xp": DevicePower(250.0, "rated", f"{_NVIDIA}, Titan Xp"),
    "gpu-v100": DevicePower(250.0, "rated", f"{_NVIDIA}, V100 PCIe (SXM2: 300 W)"),
    "cpu": DevicePower(4.4, "assumed", "one physical server core's share of a rated TDP (280 W / 64 cores, an EPYC 7B13-class "
                       "part); this machine exposes no power counter (no RAPL in /sys/class/powercap)"),
}


def device_power(hardware: str) -> DevicePower | None:
    """The active power of target ``hardware`` (GPU targets by their GPU, whatever the batch; CPU tables as 'cpu')."""
    if hardware in DEVICE_POWER:
        return DEVICE_POWER[hardware]
    if hardware.startswith("gpu-"):
        return DEVICE_POWER.get(hardware.rsplit("-b", 1)[0])
    if hardware.startswith("cpu"):
        return DEVICE_POWER["cpu"]
    return None


def batch_of(hardware: str) -> int:
    """Images per measured batch of a target (HELP's GPU targets end in -b<batch>; others run one image)."""
    tail = hardware.rsplit("-b", 1)
    return int(tail[1]) if hardware.startswith("gpu-") and len(tail) == 2 and tail[1].isdigit() else 1


def device_energy_mj(latency_ms, hardware: str):
    """Energy (mJ) per image = active power (W) × latency (ms) / images per batch; NaN where the device's power is
    unknown."""
    power = device_power(hardware)
    lat = np.asarray(latency_ms, dtype=np.float64)
    if power is None:
        return np.full_like(lat, np.nan)
    return power.watts * lat / batch_of(hardware)


def carbon_g_per_1000(energy_mj: float, grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH) -> float:
    """Grams CO2e of 1,000 inferences at ``energy_mj`` each (1 kWh = 3.6e9 mJ)."""
    if grid_g_per_kwh < 0:
        raise ValueError("grid intensity must be non-negative")
    return energy_mj * 1000 / 3.6e9 * grid_g_per_kwh
