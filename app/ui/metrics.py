"""What the Explore and Compare pages show about a config: metric tiles, trade-off points, measurements."""

from __future__ import annotations

import functools
from typing import Callable

import pandas as pd
import streamlit as st

from app import display
from app import predictors as P
from app.evaluate import MEASURE_DIR, labelled_images
from app.evaluate import measure_accuracy as _measure
from app.space import SubnetConfig

ACCURACY_AXES = display.ACCURACY_AXES


@st.cache_resource
def _targets() -> tuple:
    return tuple(P.hardware_targets())


def targets():
    """Every hardware target: the server's, then the devices this session profiled in its browser."""
    from app.ui.device_view import session_targets

    return list(_targets()) + session_targets()


def tiles(cfg: SubnetConfig, hw: str, card, precision: str = "fp32") -> list[display.Tile]:
    """The metric tiles (:func:`app.display.metric_tiles`); the latency's note, if any, as a caption."""
    out, note = display.metric_tiles(cfg, hw, card, precision)
    if note:
        st.caption(f"Latency: {note}.")
    return out


def tradeoff_points(cfg: SubnetConfig, hw: str, axis: str, pins: list[SubnetConfig],
                    precision: str = "fp32") -> tuple[pd.DataFrame, str, str]:
    """The trade-off chart's points (:func:`app.display.tradeoff_points`) with this session's pins and search result."""
    from app.ui import resources

    extra = [(c, "pinned", f"pin {i + 1}") for i, c in enumerate(pins)]
    found = st.session_state.get("_search_result")
    if found is not None:
        extra.append((found, "search result", "search result"))
    points = display.tradeoff_points(cfg, hw, resources.supernet().card, axis, tuple(extra), precision)
    if points.note:
        st.info(points.note)
    return points.frame, points.x_title, points.y_title


def summary_row(cfg: SubnetConfig, hw: str, card) -> dict:
    p = P.predict(cfg, hw, card)
    return {
        "config": cfg.to_compact(),
        "accuracy (supernet) %": p.accuracy_supernet.value,
        "ImageNet val % (OFA, calibrated)": p.accuracy_imagenet_val.value,
        "latency ms": p.latency.value,
        "energy mJ": p.energy.value,
        "MACs (M)": p.macs.value,
        "params (M)": p.params.value,
    }


def summary_sources(hw: str) -> str:
    target = next(t for t in targets() if t.name == hw)
    return (f"Latency: {target.source}. Energy: model, Horowitz ISSCC 2014 operation energies. ImageNet accuracy: OFA's "
            "predictor calibrated to published val top-1. MACs/params: counted by OFA's rules.")


def measurement_set_size() -> int:
    from app.ui import resources

    return _measurement_set_size(resources.supernet().card)


@functools.lru_cache(maxsize=4)
def _measurement_set_size(card) -> int:
    """The bundled measurement images the card's classes label (a directory walk: once per supernet, not per run)."""
    return len(labelled_images(MEASURE_DIR, card)) if MEASURE_DIR.is_dir() else 0


def measure_accuracy(net, cfg: SubnetConfig, progress: Callable[[float], None]) -> float:
    return _measure(net, cfg, MEASURE_DIR, progress=progress)
