"""Explore: pick hardware, move sliders, see the live subnet, its predicted costs and the trade-off."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from app import presets as preset_lib
from app.space import SubnetConfig
from app.ui import charts, device_view, metrics, resources, state


def _hardware_picker() -> str:
    targets = metrics.targets()
    names = [t.name for t in targets]
    labels = {t.name: f"{t.label} · {t.kind}" for t in targets}
    hw = state.hardware(names)
    st.session_state["hw_pick"] = hw
    st.selectbox("Hardware target", names, key="hw_pick", format_func=lambda n: labels[n],
                 on_change=lambda: state.set_hardware(st.session_state["hw_pick"]),
                 help="published: measured by others (cited); measured: benchmarked on a machine with this project's tool; model: an estimate.")
    return hw


def _preset_picker() -> None:
    table = preset_lib.presets()
    names = ["—"] + list(table)

    def on_preset() -> None:
        name = st.session_state["preset_pick"]
        if name in table:
            state.set_config(table[name].config)
        st.session_state["preset_pick"] = "—"

    st.selectbox("Presets", names, key="preset_pick", on_change=on_preset,
                 format_func=lambda n: n if n == "—" else f"{n}", help="Largest, smallest, or one of OFA's published specialised subnets.")


def _metric_tiles(cfg: SubnetConfig, hw: str, precision: str) -> float:
    t = time.perf_counter()
    tiles = metrics.tiles(cfg, hw, resources.supernet().card, precision)
    seconds = time.perf_counter() - t
    per_row = 3  # six tiles in two rows: values stay readable beside the sidebar
    for start in range(0, len(tiles), per_row):
        cols = st.columns(per_row)
        for col, tile in zip(cols, tiles[start : start + per_row]):
            col.metric(tile.title, tile.text, help=tile.help)
            col.caption(tile.source)
    return seconds


def _tradeoff(cfg: SubnetConfig, hw: str, precision: str) -> None:
    acc_choice = st.radio("Accuracy axis", metrics.ACCURACY_AXES, horizontal=True, key="acc_axis")
    frame, x_title, y_title = metrics.tradeoff_points(cfg, hw, acc_choice, state.pins(), precision)
    if frame.empty:
        st.info("No latency prediction for this hardware in the current resolution range; pick another target.")
        return
    event = st.vega_lite_chart(spec=charts.tradeoff_spec(frame, x_title, y_title), width="stretch",
                               on_select="rerun", key="tradeoff")
    picked = (event or {}).get("selection", {}).get("pick") if isinstance(event, dict) or hasattr(event, "get") else None
    if picked:
        compact = picked[0].get("cfg")
        if compact and compact != cfg.to_compact():
            state.set_config(SubnetConfig.from_compact(compact))
            st.rerun()
    st.caption("Click a point to load that subnet. Grey: random subnets of the space (predicted); orange: OFA's published "
               "specialised subnets (plotted at our predictions; their published figures are in the tooltip of the presets). "
               "Dark step line: the Pareto front of the plotted points, the best accuracy reachable at each latency or less; "
               "a point below it is beaten by one to its left.")


def render() -> None:
    net = resources.supernet()
    st.title("Explore the Once-for-All supernet")
    top = st.columns([3, 3, 2, 2])
    with top[0]:
        hw = _hardware_picker()
    with top[1]:
        _preset_picker()
    with top[2]:
        precision = state.precision_picker("prec_pick")
    with top[3]:
        st.write("")
        if st.button("Pin for Compare", icon=":material/push_pin:", width="stretch"):
            st.toast("Pinned." if state.pin(state.config()) else "Already pinned (or 6 pins already).")
    left, right = st.columns([1, 2], gap="large")
    with left:
        cfg = _editor()
    with right:
        st.markdown(f"**Subnet** `{cfg.to_compact()}`")
        seconds = _metric_tiles(cfg, hw, precision)
        st.vega_lite_chart(spec=charts.architecture_spec(cfg, net.card.width_mult), width="stretch")
        st.caption(f"Server time for the metrics: {seconds * 1000:.1f} ms. Bars: hidden channels of each block "
                   "(expand ratio × input channels), colour: kernel size; dashed: blocks skipped by depth.")
    _tradeoff(cfg, hw, precision)
    device_view.render()
    _measure_and_export(cfg, precision)
    resources.prefetch_statistics(cfg)  # so that Classify / Compare find this subnet calibrated


def _editor() -> SubnetConfig:
    from app.ui.controls import config_editor

    return config_editor()


def _measure_and_export(cfg: SubnetConfig, precision: str) -> None:
    net = resources.supernet()
    with st.expander("Measure int8 against fp32 on this machine", expanded=precision == "int8"):
        from app.ui import precision_view

        precision_view.render(cfg)
    with st.expander("Measure this subnet's accuracy here (on demand)"):
        n = metrics.measurement_set_size()
        if n == 0:
            st.info("No measurement images are bundled.")
        else:
            st.caption(f"Top-1 on {n} bundled Imagenette validation images (a fixed stratified subset), "
                       "BN re-estimated on the bundled calibration images. Measured on this machine.")
            if st.button("Measure accuracy", key="measure"):
                bar = st.progress(0.0, text="Measuring…")
                top1 = metrics.measure_accuracy(net, cfg, progress=lambda f: bar.progress(f, text=f"Measuring… {f:.0%}"))
                bar.empty()
                st.session_state.setdefault("_measured", {})[cfg.to_compact()] = top1
            done = st.session_state.get("_measured", {}).get(cfg.to_compact())
            if done is not None:
                st.metric("Measured top-1 (this machine, bundled val subset)", f"{done:.1f}%")
    with st.expander("Export this subnet"):
        from app.ui import export_widgets

        export_widgets.render(net, cfg)
