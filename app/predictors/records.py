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
    power_watts: float | None = None  # for the energy model
    power_source: str = ""


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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"config": self.config, "hardware": self.hardware}
        for name in ("accuracy_supernet", "accuracy_imagenet_holdout", "accuracy_imagenet_val", "latency", "energy",
                     "carbon_per_1000", "macs", "params"):
            out[name] = getattr(self, name).to_dict()
        return out
