"""Hardware targets and the prediction API: ``predict`` (one config) and ``predict_batch`` (search).

Every number says where it comes from (:class:`~app.predictors.records.Metric`): published
measurements (OFA's Note10 tables, HELP's GPU latencies, an Ultra96 FPGA dataset),
measurements made with this project's ``calibrate-hardware`` tool, or a model.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from app.costs import cost_batch
from app.predictors import accuracy as acc
from app.predictors.encoding import ConfigArrays, encode
from app.predictors.energy import (DEFAULT_GRID_G_PER_KWH, HOROWITZ, batch_of, carbon_g_per_1000, device_energy_mj, device_power,
                                   op_energy_mj)
from app.predictors.latency_lut import LatencyTable
from app.predictors.records import HardwareTarget, Metric, Prediction
from app.space import SubnetConfig

from app.paths import PRETRAINED

NOTE10_SOURCE = "Note10, published LUT (OFA, han-cai/files)"
ULTRA96_SOURCE = ("Ultra96-v2 FPGA, published int8 per-layer latencies at 224 px (Latency dataset for Once-For-All network, "
                  "github.com/Pilot-Khadka/Latency-dataset-for-Once-For-All-network)")


class LatencyModel(Protocol):
    def batch(self, a: ConfigArrays) -> np.ndarray: ...
    def note(self, r: int) -> str: ...


def user_hardware_dir() -> Path:
    """Where ``calibrate-hardware`` saves tables: $OFA_EXPLORER_HOME/hardware (default ~/.ofa_explorer)."""
    home = Path(os.environ.get("OFA_EXPLORER_HOME", Path.home() / ".ofa_explorer"))
    return home / "hardware"


# ----------------------------------------------------------------------- registry
@lru_cache(maxsize=4)
def _published_table(file: str, name: str) -> LatencyTable:
    """A bundled published lookup table (``pretrained/latency/<file>``)."""
    doc = json.loads((PRETRAINED / "latency" / file).read_text("utf-8"))
    return LatencyTable(name, {int(r): t for r, t in doc["tables"].items()})


def _measured_tables() -> list[Path]:
    """The measured tables: bundled ``cpu-*.json`` and the user's (a table added while the app runs is found: the
    listing is kept until a directory's modification time changes, so a prediction costs two stats, not two globs)."""
    bundled, user = PRETRAINED / "latency", user_hardware_dir()
    return list(_listing(str(bundled), _mtime_ns(bundled), str(user), _mtime_ns(user)))


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@lru_cache(maxsize=8)
def _listing(bundled: str, bundled_mtime: int | None, user: str, user_mtime: int | None) -> tuple[Path, ...]:
    files = sorted(Path(bundled).glob("cpu-*.json"))
    if user_mtime is not None and Path(user).is_dir():
        files += sorted(Path(user).glob("*.json"))
    return tuple(files)


def load_measured_table(path: str | Path) -> tuple[HardwareTarget, LatencyTable]:
    """A table written by ``calibrate-hardware``, as a hardware target and its latency model
    (cached until the file changes); ``ValueError`` if it is malformed."""
    return _load_measured(str(path), Path(path).stat().st_mtime)


@lru_cache(maxsize=32)
def _load_measured(path: str, mtime: float) -> tuple[HardwareTarget, LatencyTable]:
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
        name = str(doc["name"])
        tables = {int(r): {str(k): float(v) for k, v in t.items()} for r, t in doc["tables"].items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"hardware table {Path(path).name}: malformed ({exc})") from None
    try:
        corr = doc.get("correction") or {}
        table = LatencyTable(name, tables, float(doc.get("width_mult", 1.2)), int(doc.get("num_classes", 1000)),
                             float(corr.get("scale", 1.0)), float(corr.get("offset_ms", 0.0)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"hardware table {Path(path).name}: {exc}") from None
    target = HardwareTarget(
        name=name,
        label=doc.get("label", name),
        kind="measured",
        source=f"{doc.get('label', name)}, measured with calibrate-hardware ({doc.get('date', '')}, torch {doc.get('torch', '?')}"
               + (f"; table vs end-to-end on {v['subnets']} random subnets: MAPE {v['mape_percent']:.1f}%)"
                  if isinstance(v := doc.get("validation"), dict) and "mape_percent" in v else ")"),
        resolutions=table.range,
        width_mult=float(doc.get("width_mult", 1.2)),
    )
    return target, table


def _registry() -> dict[str, tuple[HardwareTarget, LatencyModel]]:
    reg: dict[str, tuple[HardwareTarget, LatencyModel]] = {}
    note10 = _published_table("note10.json", "Note10")
    reg["note10"] = (HardwareTarget("note10", "Samsung Galaxy Note10 (CPU)", "published", NOTE10_SOURCE, note10.range), note10)
    ultra96 = _published_table("fpga_ultra96.json", "Ultra96-v2 FPGA")
    reg["ultra96"] = (HardwareTarget("ultra96", "Xilinx Ultra96-v2 FPGA (DPU B2304, int8)", "published", ULTRA96_SOURCE,
                                     ultra96.range), ultra96)
    for path in _measured_tables():
        try:
            target, table = load_measured_table(path)
        except ValueError:
            continue  # listed in hardware_problems()
        reg.setdefault(target.name, (target, table))
    from app.predictors import gpu

    for target, model in gpu.targets():
        reg[target.name] = (target, model)
    return reg


def hardware_problems() -> list[str]:
    """Messages for user hardware tables that could not be loaded (shown in the UI)."""
    out = []
    for path in _measured_tables():
        try:
            load_measured_table(path)
        except ValueError as exc:
            out.append(str(exc))
    return out


def hardware_targets() -> list[HardwareTarget]:
    """Every hardware target with its kind (published / measured / model)."""
    return [t for t, _ in _registry().values()]


def hardware_target(name: str) -> HardwareTarget:
    """The target called ``name`` — the server's or a device profiled in a browser (``ValueError``, one line, if none)."""
    return _lookup(name)[0]


def _lookup(name: str) -> tuple[HardwareTarget, LatencyModel]:
    from app.predictors import device

    if device.is_device(name):
        found = device.DEVICES.get(name)
        if found is None:
            raise ValueError("this device's profile is no longer on the server (it restarted, or many devices were "
                             "profiled since); profile the device again")
        return found
    reg = _registry()
    if name not in reg:
        raise ValueError(f"hardware: unknown target {name!r}; choose from {', '.join(reg)}")
    return reg[name]


ALL_KEYS = ("latency_ms", "energy_mj", "energy_device_mj", "macs", "params", "accuracy_imagenet_holdout",
            "accuracy_imagenet_val", "accuracy_supernet")
INT8_TARGETS = ("ultra96",)  # targets whose published latencies are int8 measurements (the DPU runs int8 only)


def has_latency(hardware: str, precision: str) -> bool:
    """Whether target ``hardware`` has latency figures at ``precision``: int8 only where int8 was measured, fp32
    everywhere but on int8-only devices (whose published int8 figures are shown for fp32 too, labelled so)."""
    return precision == "fp32" or hardware in INT8_TARGETS


def batch_scorer(
    hardware: str,
    keys: Sequence[str] | None = None,
    supernet_sha256: str | None = None,
    width_mult: float = 1.2,
    num_classes: int = 1000,
    precision: str = "fp32",
):
    """A function ConfigArrays -> {key: array} computing only ``keys`` (all of :data:`ALL_KEYS` when None), the
    target resolved once, at ``precision`` (fp32 or int8: int8 changes the supernet accuracy (fp32 prediction +
    measured int8 correction), the operation-count energy and the latency (NaN where the target has no int8 figures).

    Keys: latency_ms, energy_mj (operation counts), energy_device_mj (device power x latency), macs, params,
    accuracy_imagenet_holdout, accuracy_imagenet_val, accuracy_supernet (NaN where a value cannot be given).
    """
    _, model = _lookup(hardware)
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision: choose fp32 or int8; got {precision!r}")
    wanted = set(keys) if keys is not None else set(ALL_KEYS)
    doc = acc.supernet_predictor(supernet_sha256) if supernet_sha256 and "accuracy_supernet" in wanted else None
    correction = None
    if doc and precision == "int8":
        from app.predictors.int8 import int8_correction

        correction = int8_correction(supernet_sha256)
    cal = acc.imagenet_val_calibration() if "accuracy_imagenet_val" in wanted else None
    latency_known = has_latency(hardware, precision)

    def score(a: ConfigArrays) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if wanted & {"latency_ms", "energy_device_mj"}:
            lat = model.batch(a) if latency_known else np.full(len(a), np.nan)
            if "latency_ms" in wanted:
                out["latency_ms"] = lat
            if "energy_device_mj" in wanted:
                out["energy_device_mj"] = device_energy_mj(lat, hardware)
        if wanted & {"macs", "energy_mj"} or doc:
            macs = cost_batch(a, "macs", width_mult, num_classes)
            if "macs" in wanted:
                out["macs"] = macs
            if "energy_mj" in wanted:
                words = cost_batch(a, "words", width_mult, num_classes)
                out["energy_mj"] = op_energy_mj(macs, words, precision)
        if "params" in wanted:
            out["params"] = cost_batch(a, "params", width_mult, num_classes)
        if wanted & {"accuracy_imagenet_holdout", "accuracy_imagenet_val"}:
            holdout = acc.ofa_holdout_top1(a)
            out["accuracy_imagenet_holdout"] = holdout
            if cal is not None:
                out["accuracy_imagenet_val"] = cal(holdout)
        if "accuracy_supernet" in wanted:
            top1 = acc.supernet_top1(doc, a, macs) if doc else np.full(len(a), np.nan)
            if precision == "int8":
                top1 = top1 + correction.drop(a, macs) if correction is not None else np.full(len(a), np.nan)
            out["accuracy_supernet"] = top1
        return out

    return score


def predict_batch(
    cfgs: Sequence[SubnetConfig] | ConfigArrays,
    hardware: str = "note10",
    supernet_sha256: str | None = None,
    width_mult: float = 1.2,
    num_classes: int = 1000,
    precision: str = "fp32",
) -> dict[str, np.ndarray]:
    """Vectorised predictions for many configs (see :func:`batch_scorer` for the keys)."""
    a = cfgs if isinstance(cfgs, ConfigArrays) else encode(cfgs)
    return batch_scorer(hardware, None, supernet_sha256, width_mult, num_classes, precision)(a)


def predict(
    cfg: SubnetConfig,
    hardware: str = "note10",
    supernet_card=None,
    grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH,
    precision: str = "fp32",
) -> Prediction:
    """Everything predicted for one config on one target at ``precision`` (fp32 or int8), each number with its
    source. ``supernet_card``: the supernet whose accuracy to predict (default: the bundled one, read from its card
    without loading weights)."""
    cfg = SubnetConfig.parse(cfg)
    target, model = _lookup(hardware)
    if supernet_card is None:
        supernet_card = bundled_card()
    sha = getattr(supernet_card, "sha256", None)
    classes = getattr(supernet_card, "num_classes", 1000)
    width = getattr(supernet_card, "width_mult", 1.2)
    b = predict_batch([cfg], hardware, sha, width, classes, precision)
    lat = float(b["latency_ms"][0])
    lat_metric = Metric(None if np.isnan(lat) else lat, "ms", target.source, target.kind, _latency_note(hardware, precision, model, cfg.r))
    energy = float(b["energy_mj"][0])
    energy_metric = Metric(energy, "mJ", f"energy: model, {HOROWITZ[precision]}", "model",
                           f"operation counts of this subnet in {precision} (same on every target); DRAM traffic assumes no reuse")
    carbon = Metric(carbon_g_per_1000(energy, grid_g_per_kwh), "g CO2e / 1000 inferences",
                    f"energy model × grid {grid_g_per_kwh:.0f} g CO2e/kWh", "model")
    ofa_note = "" if width == 1.2 else "OFA's predictor describes the w1.2 space; this supernet is w1.0"
    holdout = Metric(float(b["accuracy_imagenet_holdout"][0]), "%", OFA_HOLDOUT_SOURCE, "model",
                     ofa_note or "top-1 on OFA's 10K holdout from ImageNet train: runs above val top-1; fp32")
    cal = acc.imagenet_val_calibration()
    val = Metric(float(b["accuracy_imagenet_val"][0]), "%", f"OFA predictor calibrated to published val top-1 of {cal.n} specialised subnets",
                 "model", f"calibration error ±{cal.loo_mae:.1f} pp (leave-one-out MAE); fp32")
    sup = float(b["accuracy_supernet"][0])
    return Prediction(
        config=cfg.to_compact(),
        hardware=hardware,
        accuracy_supernet=_supernet_metric(sup, sha, precision),
        accuracy_imagenet_holdout=holdout,
        accuracy_imagenet_val=val,
        latency=lat_metric,
        energy=energy_metric,
        carbon_per_1000=carbon,
        macs=Metric(float(b["macs"][0]) / 1e6, "M", "counted here (OFA's rules)", "measured"),
        params=Metric(float(b["params"][0]) / 1e6, "M", "counted here (OFA's rules)", "measured"),
        energy_device=_device_energy_metric(float(b["energy_device_mj"][0]), hardware, target, precision),
        precision=precision,
    )


def _latency_note(hardware: str, precision: str, model: LatencyModel, r: int) -> str:
    note = model.note(r)
    if hardware in INT8_TARGETS:
        return "; ".join(filter(None, [note, "this device runs int8 only: its published latencies are int8 measurements"
                                       + (" (shown for fp32 too)" if precision == "fp32" else "")]))
    if precision == "int8":
        return ("no int8 measurement for this target: its figures are fp32 (onnxruntime int8 on this machine is measured "
                "on demand in Explore)")
    return note


def _supernet_metric(value: float, sha: str | None, precision: str) -> Metric:
    if precision == "int8":
        from app.predictors.int8 import int8_correction

        corr = int8_correction(sha) if sha else None
        if corr is None or np.isnan(value):
            return Metric(None, "%", SUPERNET_SOURCE, "model", "no int8 measurements for this supernet's weights yet")
        return Metric(value, "%", corr.source, "model", f"int8 (static post-training quantization). fp32 predictor: {_supernet_note(sha)}")
    return Metric(None if np.isnan(value) else value, "%", SUPERNET_SOURCE, "model",
                  _supernet_note(sha) if not np.isnan(value) else "no accuracy predictor fitted for this supernet's weights yet")


def _device_energy_metric(value: float, hardware: str, target: HardwareTarget, precision: str) -> Metric:
    power = device_power(hardware)
    if power is None:
        return Metric(None, "mJ", "device power × latency", "model", "no power figure for this device")
    per = f" / {batch_of(hardware)} images per batch" if batch_of(hardware) > 1 else ""
    source = f"device power × latency: {power.watts:g} W ({power.kind}: {power.source}) × {target.label} latency{per}"
    if np.isnan(value):
        return Metric(None, "mJ", source, "model", f"no {precision} latency for this target")
    return Metric(value, "mJ", source, "model", f"{precision}; {power.kind} power: active power while the network runs")


@lru_cache(maxsize=1)
def bundled_card():
    """The bundled supernet's card read from its JSON (no weights loaded); None if it is missing or unreadable."""
    from app.card import SupernetCard
    from app.weights import default_weights_path

    try:
        return SupernetCard.from_dict(json.loads(default_weights_path().with_suffix(".json").read_text("utf-8")))
    except (OSError, ValueError):
        return None


OFA_HOLDOUT_SOURCE = acc.OFA_SOURCE
SUPERNET_SOURCE = "bundled supernet's predictor (fitted on measured Imagenette top-1, pretrained/predictors)"


def _supernet_note(sha: str | None) -> str:
    """The fitted predictor's held-out error and what it predicts, from its file."""
    doc = acc.supernet_predictor(sha) if sha else None
    if not doc:
        return ""
    h = doc["heldout"]
    earlier = doc["split"].get("earlier_weights_rows", 0)
    measured = f"{doc['split']['n']} configs measured on these weights" + (
        f" (and {earlier} on the earlier weights they continue)" if earlier else "")
    s = doc["heldout_over_splits"]
    over = f", mean over {s['splits']} seeded splits" if s["splits"] > 1 else ""
    return (f"{measured}; held-out error on {h['configs']} of them, kept out of the fit{over}: RMSE {s['rmse_pp']:.2f} pp "
            f"(predicting the mean: {s['rmse_pp_predicting_the_mean']:.2f}), Kendall tau {s['kendall_tau']:.2f}; "
            f"predicts {doc['target']}")
