"""What every front end shows about a config — the Streamlit app (:mod:`app.ui.metrics`) and the notebook explorer
(:mod:`app.jupyter`) read it here, so they cannot disagree: the metric tiles (value, source, tooltip), the trade-off
chart's points and the app's link (``?cfg=…&hw=…``). No Streamlit, no widgets, no torch: numbers come from
:func:`app.predictors.predict` / :func:`~app.predictors.predict_batch`, configs from :mod:`app.space`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qs, urlencode, urlsplit

import pandas as pd

from app import predictors as P
from app.predictors.encoding import encode
from app.presets import resolve, specialised
from app.space import SubnetConfig

APP_URL = "http://localhost:8501"  # where `make run` serves the app
APP_PAGE = "explore"  # the page a link opens (also the app's root page)
MODES = ("quick", "stage", "block")  # the app's editor modes (`mode` in its URL)
ACCURACY_AXES = ("Bundled supernet (Imagenette, predicted)", "OFA ImageNet (val, calibrated)", "OFA ImageNet (holdout, raw)")
AXIS_COLUMNS = dict(zip(ACCURACY_AXES, ("accuracy_supernet", "accuracy_imagenet_val", "accuracy_imagenet_holdout")))
SAMPLED = 300  # random subnets on the trade-off chart (seeded), as in the app
DEFAULT_CONFIG = SubnetConfig.largest(224)
DEFAULT_HARDWARE = "note10"


# ----------------------------------------------------------------------------------------------- tiles
@dataclass(frozen=True)
class Tile:
    """One metric tile: its title, the value as text, a short source and the longer help (a tooltip)."""

    title: str
    text: str
    source: str
    help: str


def _fmt(m: P.Metric, fmt: str) -> str:
    return "n/a" if m.value is None else fmt.format(m.value)


def _kind_label(m: P.Metric) -> str:
    short = m.source.split(",")[0].split(" (")[0]
    return f"{short} · {m.kind}"


def tiles_from_prediction(p: P.Prediction, num_classes: int) -> list[Tile]:
    """The tiles of a prediction: accuracy, ImageNet top-1, latency, energy by operation counts, energy on the
    device, MACs, params; the sources of the numbers the precision changes name it (fp32 / int8)."""
    prec = p.precision
    acc_title = "Accuracy (Imagenette)" if num_classes == 10 else "Accuracy (this supernet)"
    acc_source = p.accuracy_supernet.source.split(" (")[0] if prec == "fp32" else "int8: fp32 predictor + measured int8 correction"
    dev = p.energy_device
    return [
        Tile(acc_title, _fmt(p.accuracy_supernet, "{:.1f}%"), acc_source, f"{p.accuracy_supernet.source}. {p.accuracy_supernet.note}"),
        Tile("ImageNet top-1 (OFA)", _fmt(p.accuracy_imagenet_val, "{:.1f}%"), "OFA predictor, calibrated to val, fp32",
             f"{p.accuracy_imagenet_val.source}; {p.accuracy_imagenet_val.note}. Raw OFA prediction (10K holdout from "
             f"ImageNet train, runs above val): {_fmt(p.accuracy_imagenet_holdout, '{:.1f}%')}. Describes OFA's official "
             "w1.2 supernet, not the bundled one."),
        Tile("Latency", _fmt(p.latency, "{:.1f} ms"),
             f"{_kind_label(p.latency)} · {prec}" if p.latency.value is not None else f"no {prec} measurement for this target",
             f"{p.latency.source}. {p.latency.note}"),
        Tile("Energy", _fmt(p.energy, "{:.2f} mJ"), f"model, Horowitz 2014 · {prec}",
             f"{p.energy.source}. {p.energy.note}. Carbon: {p.carbon_per_1000.value:.2g} g CO2e per 1,000 inferences "
             f"({p.carbon_per_1000.source})."),
        Tile("Energy on this device", _fmt(dev, "{:.2f} mJ"), _device_label(dev), f"{dev.source}. {dev.note}."),
        Tile("MACs", _fmt(p.macs, "{:.0f} M"), "counted, OFA's rules", "Multiply-accumulates at this resolution, with this supernet's classifier head."),
        Tile("Params", _fmt(p.params, "{:.2f} M"), "counted, OFA's rules", "Parameters of the extracted subnet (with this supernet's classifier head)."),
    ]


def _device_label(m: P.Metric) -> str:
    """"power × latency, rated power" (the kind of the power figure), or why there is no value."""
    if m.value is None:
        return m.note
    kind = m.source.split("W (", 1)[1].split(":", 1)[0] if "W (" in m.source else "model"
    return f"power × latency, {kind} power"


def metric_tiles(cfg: SubnetConfig, hardware: str, card, precision: str = "fp32") -> tuple[list[Tile], str]:
    """(tiles, latency note) of ``cfg`` on ``hardware`` at ``precision`` for the supernet of ``card``; the note is empty
    unless the latency needs one (e.g. a resolution outside the target's tables). ``ValueError`` for an unknown target."""
    p = P.predict(cfg, hardware, card, precision=precision)
    return tiles_from_prediction(p, getattr(card, "num_classes", 1000)), p.latency.note


# ----------------------------------------------------------------------------------------------- hardware
def hardware_names() -> list[str]:
    """Names of every hardware target, in the app's order."""
    return [t.name for t in P.hardware_targets()]


def check_hardware(name: str) -> str:
    """``name`` if it is a hardware target, else ``ValueError`` with the library's one-line message."""
    target(name)
    return name


def target(name: str) -> P.HardwareTarget:
    """The hardware target called ``name`` (``ValueError`` if there is none)."""
    from app.predictors.hardware import hardware_target

    return hardware_target(name)


# ----------------------------------------------------------------------------------------------- trade-off points
@lru_cache(maxsize=32)
def _sampled(hw: str, sha: str | None, width: float, classes: int, precision: str) -> pd.DataFrame:
    rng = random.Random(0)
    cfgs = [SubnetConfig.random(rng) for _ in range(SAMPLED)]
    spec = list(specialised())
    allc = cfgs + [p.config for p in spec] + [SubnetConfig.largest(224), SubnetConfig.smallest(128)]
    df = pd.DataFrame(dict(P.predict_batch(encode(allc), hw, sha, width, classes, precision)))
    df["cfg"] = [c.to_compact() for c in allc]
    df["group"] = ["sampled subnets"] * len(cfgs) + ["OFA specialised (published)"] * len(spec) + ["sampled subnets"] * 2
    df["name"] = ["random subnet"] * len(cfgs) + [p.name for p in spec] + ["largest", "smallest"]
    return df


def sampled_points(hardware: str, card, precision: str = "fp32") -> pd.DataFrame:
    """Predictions (every ``predict_batch`` column, plus ``cfg``, ``group``, ``name``) for the app's fixed sample: 300
    seeded random subnets, OFA's published specialised ones, the largest and the smallest (a copy: the cache is shared)."""
    return _sampled(check_hardware(hardware), getattr(card, "sha256", None) or None, getattr(card, "width_mult", 1.2),
                    getattr(card, "num_classes", 1000), precision).copy()


@dataclass(frozen=True)
class TradeoffPoints:
    """The trade-off chart's data: columns x (latency, ms), y (accuracy, %), group, name, cfg; its axis titles;
    a note when the asked accuracy axis had to be replaced."""

    frame: pd.DataFrame
    x_title: str
    y_title: str
    note: str = ""


def _predicted(cfgs: list[SubnetConfig], hardware: str, card, precision: str) -> pd.DataFrame:
    return pd.DataFrame(dict(P.predict_batch(encode(cfgs), hardware, getattr(card, "sha256", None) or None,
                                             getattr(card, "width_mult", 1.2), getattr(card, "num_classes", 1000), precision)))


def tradeoff_points(cfg: SubnetConfig, hardware: str, card, axis: str = ACCURACY_AXES[0],
                    extra: tuple[tuple[SubnetConfig, str, str], ...] = (), precision: str = "fp32") -> TradeoffPoints:
    """The sampled subnets plus ``cfg`` (group "current subnet") and any ``extra`` (config, group, name) points, on
    ``axis`` (one of :data:`ACCURACY_AXES`) against latency on ``hardware``; rows without a latency are dropped.
    At int8 the bundled supernet's accuracy is int8 (predicted); the latency axis stays the target's own figures,
    titled with their precision (fp32 where the target has no int8 ones)."""
    if axis not in AXIS_COLUMNS:
        raise ValueError(f"accuracy axis: must be one of {', '.join(ACCURACY_AXES)}; got {axis!r}")
    lat_precision = precision if P.has_latency(hardware, precision) else "fp32"
    df = sampled_points(hardware, card, precision)
    more_cfgs = [(cfg, "current subnet", "current"), *extra]
    more = _predicted([c for c, _, _ in more_cfgs], hardware, card, precision)
    if lat_precision != precision:  # the accuracy at int8, the latency at fp32 (the only figures this target has)
        df["latency_ms"] = sampled_points(hardware, card, "fp32")["latency_ms"]
        more["latency_ms"] = _predicted([c for c, _, _ in more_cfgs], hardware, card, "fp32")["latency_ms"]
    more["cfg"] = [c.to_compact() for c, _, _ in more_cfgs]
    more["group"] = [g for _, g, _ in more_cfgs]
    more["name"] = [n for _, _, n in more_cfgs]
    df = pd.concat([df, more], ignore_index=True)
    col, note = AXIS_COLUMNS[axis], ""
    if df[col].isna().all():
        note = ("No int8 measurements for this supernet's weights yet" if precision == "int8" and col == "accuracy_supernet"
                else "No accuracy predictor is fitted for this supernet's weights yet") + "; showing OFA's calibrated ImageNet prediction."
        col, axis = AXIS_COLUMNS[ACCURACY_AXES[1]], ACCURACY_AXES[1]
    frame = df.rename(columns={"latency_ms": "x", col: "y"})[["x", "y", "group", "name", "cfg"]].dropna().reset_index(drop=True)
    x_title = f"latency on {target(hardware).label} (ms)"
    if precision != "fp32":
        x_title += f" · {lat_precision}" + (f": no {precision} figures for this target" if lat_precision != precision else "")
    y_title = f"{axis} top-1 (%)" + (" · int8" if precision == "int8" and col == "accuracy_supernet" else "")
    return TradeoffPoints(frame, x_title, y_title, note)


# ----------------------------------------------------------------------------------------------- the app's link
@dataclass(frozen=True)
class AppLink:
    """What a link (or a pasted config) sets: a config, a hardware target, an editor mode; None where it says nothing."""

    config: SubnetConfig | None = None
    hardware: str | None = None
    mode: str | None = None


def app_url(cfg: SubnetConfig, hardware: str, base: str = APP_URL, mode: str = "quick") -> str:
    """The Streamlit app's link to ``cfg`` on ``hardware`` (its Explore page; ``mode`` is the editor shown there)."""
    query = {"cfg": cfg.to_compact(), "hw": hardware}
    if mode != "quick":
        query["mode"] = mode
    return f"{base.rstrip('/')}/{APP_PAGE}?{urlencode(query)}"


def looks_like_link(text: str) -> bool:
    """Whether ``text`` is a URL or a query string (rather than a config or a preset name)."""
    t = text.strip()
    return "://" in t or t.startswith("?") or "cfg=" in t or "hw=" in t


def parse_app_url(url: str) -> AppLink:
    """The config, hardware and mode of an app link (``…/explore?cfg=…&hw=…``, or just its query string).
    ``ValueError`` with a one-line message when the link carries neither ``cfg`` nor ``hw``, or a bad value."""
    if not isinstance(url, str):
        raise ValueError(f"link: must be text; got {type(url).__name__}")
    text = url.strip()
    query = urlsplit(text).query if "?" in text or "://" in text else text
    params = parse_qs(query, keep_blank_values=True)
    if "cfg" not in params and "hw" not in params:
        raise ValueError(f"link: no cfg or hw parameter in {text[:80]!r}; an app link looks like "
                         f"{app_url(DEFAULT_CONFIG, DEFAULT_HARDWARE)}")
    cfg = hw = mode = None
    if "cfg" in params:
        try:
            cfg = SubnetConfig.parse(params["cfg"][0])
        except ValueError as exc:
            raise ValueError(f"The link's subnet config was not understood ({exc})") from None
    if "hw" in params:
        hw = check_hardware(params["hw"][0])
    if "mode" in params and params["mode"][0] in MODES:
        mode = params["mode"][0]
    return AppLink(cfg, hw, mode)


def read_config_text(text: str) -> AppLink:
    """What a user pasted: an app link, a preset name, a compact config string, JSON or a .json file path."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("config: paste an app link, a preset name (largest, smallest, ...), a compact config string or JSON")
    if looks_like_link(text):
        return parse_app_url(text)
    return AppLink(config=resolve(text))
