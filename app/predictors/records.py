"""Records every predicted or measured number travels in: value, unit, and where it comes from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["published", "measured", "model"]


@dataclass(frozen=True)
class Metric:
    """One number with its provenance. ``value`` is None when it cannot be given (``note`` says why)."""

    value: float | None
    unit: str
    source: str
    kind: Kind
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self, fmt: str = "{:.1f}") -> str:
        return "n/a" if self.value is None else f"{fmt.format(self.value)} {self.unit}".strip()


@dataclass(frozen=True)
class HardwareTarget:
    """A device the app predicts latency and energy for."""

    name: str
    label: str
    kind: Kind
    source: str
    resolutions: tuple[int, int]  # valid input resolutions (inclusive)
    width_mult: float | None = 1.2  # supernet width the data describes (None: any)


@dataclass(frozen=True)
class Prediction:
    """Everything predicted for one config on one hardware target."""

    config: str
    hardware: str
    accuracy_supernet: Metric
    accuracy_imagenet_holdout: Metric
    accuracy_imagenet_val: Metric
    latency: Metric
    energy: Metric
    carbon_per_1000: Metric
    macs: Metric
    params: Metric
    energy_device: Metric | None = None  # this device's power x its latency (None: not computed)
    precision: str = "fp32"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"config": self.config, "hardware": self.hardware, "precision": self.precision}
        for name in ("accuracy_supernet", "accuracy_imagenet_holdout", "accuracy_imagenet_val", "latency", "energy",
                     "energy_device", "carbon_per_1000", "macs", "params"):
            m = getattr(self, name)
            out[name] = m.to_dict() if m is not None else None
        return out
