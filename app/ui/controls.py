"""Widgets that edit the current subnet config: global sliders, per-stage and per-block editors."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from app.space import (
    DEPTH_CHOICES,
    EXPAND_CHOICES,
    KERNEL_CHOICES,
    MAX_DEPTH,
    NUM_STAGES,
    RESOLUTION_CHOICES,
    SubnetConfig,
)
from app.ui import state

MODES = ("Quick (global sliders)", "Per stage", "Per block")


def _most_common(values) -> int:
    return Counter(values).most_common(1)[0][0]


def _active_values(cfg: SubnetConfig, values) -> list[int]:
    return [v for v, a in zip(values, cfg.active_mask()) if a]


def _on_global(dim: str) -> None:
    cfg = state.config()
    v = st.session_state[f"g_{dim}"]
    if dim == "d":
        cfg = cfg.replace(d=(v,) * NUM_STAGES)
    elif dim == "ks":
        cfg = cfg.replace(ks=(v,) * len(cfg.ks))
    elif dim == "e":
        cfg = cfg.replace(e=(v,) * len(cfg.e))
    else:
        cfg = cfg.replace(r=v)
    state.set_config(cfg)


def global_sliders(cfg: SubnetConfig) -> None:
    """Four sliders; each sets its dimension for every block (keeping the others)."""
    st.session_state["g_d"] = _most_common(cfg.d)
    st.session_state["g_ks"] = _most_common(_active_values(cfg, cfg.ks))
    st.session_state["g_e"] = _most_common(_active_values(cfg, cfg.e))
    st.session_state["g_r"] = cfg.r
    st.select_slider("Depth (blocks per stage)", DEPTH_CHOICES, key="g_d", on_change=_on_global, args=("d",),
                     help="Elastic depth: each of the 5 stages runs its first d blocks.")
    st.select_slider("Width (expand ratio)", EXPAND_CHOICES, key="g_e", on_change=_on_global, args=("e",),
                     help="Elastic width: hidden channels = expand ratio × input channels; the most important channels are kept.")
    st.select_slider("Kernel size", KERNEL_CHOICES, key="g_ks", on_change=_on_global, args=("ks",),
                     help="Elastic kernel: smaller kernels are the centre of the 7×7 one through learned transformation matrices.")
    st.select_slider("Input resolution (px)", RESOLUTION_CHOICES, key="g_r", on_change=_on_global, args=("r",))
    uniform = len(set(cfg.d)) == 1 and len(set(_active_values(cfg, cfg.ks))) == 1 and len(set(_active_values(cfg, cfg.e))) == 1
    if not uniform:
        st.caption("The current subnet mixes values across blocks; the sliders show the most common value, "
                   "and moving one sets it for every block.")


def _on_stage() -> None:
    cfg = state.config()
    ks, e, d = list(cfg.ks), list(cfg.e), list(cfg.d)
    for s in range(NUM_STAGES):
        d[s] = st.session_state[f"s_d{s}"]
        for j in range(MAX_DEPTH):
            ks[s * MAX_DEPTH + j] = st.session_state[f"s_k{s}"]
            e[s * MAX_DEPTH + j] = st.session_state[f"s_e{s}"]
    state.set_config(cfg.replace(ks=tuple(ks), e=tuple(e), d=tuple(d), r=st.session_state["s_r"]))


def stage_editor(cfg: SubnetConfig) -> None:
    """Depth, kernel and expand ratio per stage."""
    st.session_state["s_r"] = cfg.r
    st.select_slider("Input resolution (px)", RESOLUTION_CHOICES, key="s_r", on_change=_on_stage)
    cols = st.columns(NUM_STAGES)
    for s, col in enumerate(cols):
        blocks = range(s * MAX_DEPTH, s * MAX_DEPTH + cfg.d[s])
        st.session_state[f"s_d{s}"] = cfg.d[s]
        st.session_state[f"s_k{s}"] = _most_common([cfg.ks[i] for i in blocks])
        st.session_state[f"s_e{s}"] = _most_common([cfg.e[i] for i in blocks])
        with col:
            st.markdown(f"**Stage {s + 1}**")
            st.selectbox("depth", DEPTH_CHOICES, key=f"s_d{s}", on_change=_on_stage)
            st.selectbox("kernel", KERNEL_CHOICES, key=f"s_k{s}", on_change=_on_stage)
            st.selectbox("expand", EXPAND_CHOICES, key=f"s_e{s}", on_change=_on_stage)


def block_editor(cfg: SubnetConfig) -> None:
    """Kernel and expand ratio of each of the 20 blocks (a table), depth per stage."""
    st.session_state["b_r"] = cfg.r

    def on_r() -> None:
        state.set_config(state.config().replace(r=st.session_state["b_r"]))

    st.select_slider("Input resolution (px)", RESOLUTION_CHOICES, key="b_r", on_change=on_r)
    dcols = st.columns(NUM_STAGES)
    for s, col in enumerate(dcols):
        st.session_state[f"b_d{s}"] = cfg.d[s]

        def on_d(stage: int = s) -> None:
            c = state.config()
            d = list(c.d)
            d[stage] = st.session_state[f"b_d{stage}"]
            state.set_config(c.replace(d=tuple(d)))

        col.selectbox(f"stage {s + 1} depth", DEPTH_CHOICES, key=f"b_d{s}", on_change=on_d)
    frame = pd.DataFrame(
        {
            "stage": [i // MAX_DEPTH + 1 for i in range(len(cfg.ks))],
            "block": [i % MAX_DEPTH + 1 for i in range(len(cfg.ks))],
            "active": list(cfg.active_mask()),
            "kernel": list(cfg.ks),
            "expand": list(cfg.e),
        }
    )
    edited = st.data_editor(
        frame,
        key=f"b_table_{cfg.to_compact()}",
        hide_index=True,
        disabled=["stage", "block", "active"],
        column_config={
            "kernel": st.column_config.SelectboxColumn("kernel", options=list(KERNEL_CHOICES), required=True),
            "expand": st.column_config.SelectboxColumn("expand", options=list(EXPAND_CHOICES), required=True),
            "active": st.column_config.CheckboxColumn("active (depth)"),
        },
        height=35 * 21 + 3,
    )
    new_ks = tuple(int(v) for v in edited["kernel"])
    new_e = tuple(int(v) for v in edited["expand"])
    if (new_ks, new_e) != (cfg.ks, cfg.e):
        try:
            state.set_config(cfg.replace(ks=new_ks, e=new_e))
            st.rerun()
        except ValueError as exc:
            st.error(str(exc))
    st.caption("Blocks skipped by depth are inactive; their values are kept only to show the table.")


def config_editor() -> SubnetConfig:
    """Mode switch + the editor of that mode; returns the (possibly updated) config."""
    cfg = state.config()
    mode = state.param("mode", "quick", str, lambda v: v in ("quick", "stage", "block"))
    labels = dict(zip(("quick", "stage", "block"), MODES))
    st.session_state["mode_radio"] = labels[mode]

    def on_mode() -> None:
        inv = {v: k for k, v in labels.items()}
        state.set_param("mode", inv[st.session_state["mode_radio"]])

    st.radio("Editor", MODES, key="mode_radio", horizontal=True, on_change=on_mode, label_visibility="collapsed")
    if mode == "quick":
        global_sliders(cfg)
    elif mode == "stage":
        stage_editor(cfg)
    else:
        block_editor(cfg)
    return state.config()
