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
    for col, (_, r) in zip(cols, rows.iterrows()):
        col.metric(r["method"], f"{r['gpu_hours']:,.0f} GPU-h", f"{r['co2e_kg']:,.0f} kg CO2e", delta_color="off")
    best_other = others.loc[others["gpu_hours"].idxmin()]
    st.success(f"At N = {n}, OFA needs {best_other['gpu_hours'] / ofa['gpu_hours']:.1f}× fewer GPU-hours than the "
               f"cheapest per-scenario method here ({best_other['method']}).")
    left, right = st.columns(2)
    left.altair_chart(charts.carbon_chart(rows, "co2e_kg", f"kg CO2e at N = {n} (log scale)"), width="stretch")
    ns = [1, 2, 5, 10, 20, 40, 100, 200, 500, 1000]
    curve = pd.DataFrame([r for k in ns for r in carbon.cost_table(k, grid)])
    right.altair_chart(charts.carbon_vs_n_chart(curve, "co2e_kg", "kg CO2e (log scale)"), width="stretch")
    st.dataframe(rows.rename(columns={"gpu_hours": "GPU-hours", "kwh": "kWh", "co2e_kg": "kg CO2e", "co2e_lbs": "lbs CO2e"}),
                 hide_index=True, width="stretch")
    st.caption(
        f"Source: {carbon.SOURCE}. GPU-hours as functions of N from the paper's Table 1 (its totals at N = 40: "
        "OFA 1.2k, ProxylessNAS 20k, FBNet 23k, MnasNet 1,600k GPU-hours). Energy: the paper's 0.2836 lbs CO2e per "
        f"GPU-hour at Strubell et al.'s 0.954 lbs/kWh = {carbon.KWH_PER_GPU_HOUR:.3f} kWh per GPU-hour (PUE included), "
        f"times your grid intensity. For scale: a Transformer NAS ≈ {carbon.STRUBELL_TRANSFORMER_NAS_LBS:,} lbs CO2e (Strubell et al.)."
    )
