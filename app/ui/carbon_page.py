"""Carbon: train once (OFA) vs search and train per deployment scenario, scaled to N and a grid."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import carbon
from app.ui import charts, state


def render() -> None:
    st.title("Train once, specialise many times")
    st.markdown(
        "Designing a network for **N** deployment scenarios (devices × latency budgets) costs most NAS methods "
        "a search (and often a training run) **per scenario**. OFA trains one supernet once and extracts a "
        "specialised subnet per scenario without retraining."
    )
    n = state.param("n", 40, int, lambda v: 1 <= v <= 1000)
    grid = state.param("grid", round(carbon.DEFAULT_GRID_G_PER_KWH), int, lambda v: 0 <= v <= 2000)
    st.session_state["n_slider"] = n
    st.session_state["grid_slider"] = grid
    c1, c2 = st.columns(2)
    c1.slider("Deployment scenarios N", 1, 1000, key="n_slider", on_change=lambda: state.set_param("n", st.session_state["n_slider"]))
    c2.slider("Grid carbon intensity (g CO2e / kWh)", 0, 2000, key="grid_slider",
              on_change=lambda: state.set_param("grid", st.session_state["grid_slider"]),
              help=f"Default {carbon.DEFAULT_GRID_G_PER_KWH:.0f} g/kWh: the US average used by Strubell et al. and the OFA paper.")
    n, grid = st.session_state["n_slider"], st.session_state["grid_slider"]
    rows = pd.DataFrame(carbon.cost_table(n, grid))
    ofa = rows.iloc[0]
    others = rows.iloc[1:]
    cols = st.columns(len(rows))
    for col, (_, r) in zip(cols, rows.iterrows()):  # compact values (1.6M GPU-h) fit four tiles in a row
        col.metric(r["method"], f"{charts.compact_number(r['gpu_hours'])} GPU-h",
                   f"{charts.compact_number(r['co2e_kg'])} kg CO2e", delta_color="off", delta_arrow="off",
                   help=f"{r['gpu_hours']:,.0f} GPU-hours, {r['co2e_kg']:,.0f} kg CO2e ({r['note']})")
    best_other = others.loc[others["gpu_hours"].idxmin()]
    ratio = best_other["gpu_hours"] / ofa["gpu_hours"]
    if ratio > 1:
        st.success(f"At N = {n}, OFA needs {ratio:.1f}× fewer GPU-hours than the "
                   f"cheapest per-scenario method here ({best_other['method']}).")
    else:  # a few scenarios only: the one-off training costs more than searching per scenario
        st.info(f"At N = {n}, OFA needs {1 / ratio:.1f}× the GPU-hours of the cheapest per-scenario method here "
                f"({best_other['method']}): training once pays off from N = {_break_even()} scenarios.")
    # kg CO2e on a log scale; on a zero-carbon grid every CO2e is 0, which a log scale cannot show: plot GPU-hours then
    value, unit = ("co2e_kg", "kg CO2e") if grid > 0 else ("gpu_hours", "GPU-hours")
    left, right = st.columns(2)
    left.altair_chart(charts.carbon_chart(rows, value, f"{unit} at N = {n} (log scale)"), width="stretch")
    left.caption("Bars from OFA's Table 1 GPU-hours (Cai et al., ICLR 2020) × the energy per GPU-hour of Strubell et al. "
                 "(ACL 2019) × your grid" + ("." if grid > 0 else "; at 0 g/kWh every method emits 0 kg, so GPU-hours are shown."))
    ns = [1, 2, 5, 10, 20, 40, 100, 200, 500, 1000]
    curve = pd.DataFrame([r for k in ns for r in carbon.cost_table(k, grid)])
    right.altair_chart(charts.carbon_vs_n_chart(curve, value, f"{unit} (log scale)", current_n=n), width="stretch")
    right.caption("Same sources, for N from 1 to 1,000 (log-log: a cost per scenario is a straight line, OFA's "
                  "one-off cost a flat one). Dashed: your N.")
    st.markdown(f"**Design cost at N = {n} scenarios, grid {grid:,} g CO2e/kWh**")
    table = rows.drop(columns=["N"]).rename(columns={"gpu_hours": "GPU-hours", "kwh": "energy (kWh)",
                                                     "co2e_kg": "CO2e (kg)", "co2e_lbs": "CO2e (lbs)"})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "method": st.column_config.TextColumn("method", pinned=True),
        **{c: st.column_config.NumberColumn(c, format=_number_format(table[c]))
           for c in ("GPU-hours", "energy (kWh)", "CO2e (kg)", "CO2e (lbs)")},
        "note": st.column_config.TextColumn("GPU-hours as a function of N (OFA Table 1)"),
    })
    st.caption(
        f"Source: {carbon.SOURCE}. GPU-hours as functions of N from the paper's Table 1 (its totals at N = 40: "
        "OFA 1.2k, ProxylessNAS 20k, FBNet 23k, MnasNet 1,600k GPU-hours). Energy: the paper's 0.2836 lbs CO2e per "
        f"GPU-hour at Strubell et al.'s 0.954 lbs/kWh = {carbon.KWH_PER_GPU_HOUR:.3f} kWh per GPU-hour (PUE included), "
        f"times your grid intensity. For scale: a Transformer NAS ≈ {carbon.STRUBELL_TRANSFORMER_NAS_LBS:,} lbs CO2e (Strubell et al.)."
    )


def _number_format(values: pd.Series) -> str:
    """printf format of a table column: thousands separators, decimals only where the values are small."""
    smallest = values.abs().min()
    return "%,.0f" if smallest >= 100 or smallest == 0 else "%,.1f" if smallest >= 1 else "%,.3f"


def _break_even(limit: int = 100_000) -> int:
    """The smallest N at which OFA's one-off cost is below every per-scenario method's."""
    ofa, *others = carbon.METHODS
    return next((k for k in range(1, limit + 1) if all(m.gpu_hours(k) > ofa.gpu_hours(k) for m in others)), limit)
