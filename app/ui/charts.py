"""Altair charts of the app: trade-off scatter, architecture diagram, top-5 bars, carbon costs, training progress.

Pure functions from data frames / configs to ``alt.Chart`` objects (no Streamlit here),
so they are testable on their own.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from app.space import MAX_DEPTH, STAGES, SubnetConfig, Widths, middle_channels

KERNEL_COLOURS = {3: "#9ecae1", 5: "#4292c6", 7: "#08519c"}


def tradeoff_chart(points: pd.DataFrame, x: str, y: str, x_title: str, y_title: str) -> alt.Chart:
    """Accuracy-vs-cost scatter. ``points`` columns: x, y, ``group`` (sampled / specialised /
    current / pinned), ``name``, ``cfg`` (compact string). Clicking a point selects it."""
    sel = alt.selection_point(name="pick", fields=["cfg"], on="click", clear="dblclick")
    groups = ["sampled subnets", "OFA specialised (published)", "search result", "pinned", "current subnet"]
    colours = ["#b0b7bf", "#e67e22", "#27ae60", "#8e44ad", "#c0392b"]
    base = alt.Chart(points).encode(
        x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False)),
        color=alt.Color("group:N", scale=alt.Scale(domain=groups, range=colours), legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("name:N", title="subnet"), alt.Tooltip(f"{x}:Q", title=x_title, format=".2f"),
                 alt.Tooltip(f"{y}:Q", title=y_title, format=".2f"), alt.Tooltip("cfg:N", title="config")],
    )
    pts = base.mark_point(filled=True, opacity=0.75).encode(
        size=alt.condition(sel, alt.value(90), alt.value(40)),
        shape=alt.Shape("group:N", scale=alt.Scale(domain=groups, range=["circle", "diamond", "square", "triangle-up", "cross"]), legend=None),
    ).add_params(sel)
    current = base.transform_filter(alt.datum.group == "current subnet").mark_point(filled=True, size=260, shape="cross")
    return (pts + current).properties(height=380)


def diagram_frame(cfg: SubnetConfig, width_mult: float = 1.2) -> pd.DataFrame:
    """One row per block of the supernet (all 20): stage, active, kernel, expand, hidden width."""
    w = Widths.of(width_mult)
    rows = []
    in_ch = w.first_block
    active = cfg.active_mask()
    for stage, spec in enumerate(STAGES):
        for j in range(MAX_DEPTH):
            i = stage * MAX_DEPTH + j
            mid = middle_channels(in_ch, cfg.e[i])
            rows.append({
                "block": i + 1,
                "stage": f"stage {stage + 1}",
                "active": active[i],
                "status": "active" if active[i] else "skipped (depth)",
                "kernel": cfg.ks[i] if active[i] else None,
                "expand": cfg.e[i] if active[i] else None,
                "hidden": mid if active[i] else 0,
                "out": w.stages[stage],
                "label": f"k{cfg.ks[i]} e{cfg.e[i]}" if active[i] else "skip",
                "se": spec.use_se,
                "stride": spec.stride if j == 0 else 1,
            })
            in_ch = w.stages[stage]
    return pd.DataFrame(rows)


def architecture_chart(cfg: SubnetConfig, width_mult: float = 1.2) -> alt.Chart:
    """Blocks as bars: height = hidden channels (width), colour = kernel size, skipped blocks hollow."""
    df = diagram_frame(cfg, width_mult)
    max_hidden = middle_channels(Widths.of(width_mult).stages[-2], 6)
    df["ghost"] = max_hidden * 0.15
    base = alt.Chart(df).encode(x=alt.X("block:O", title="block (1-20)", axis=alt.Axis(labelAngle=0)))
    bars = base.transform_filter("datum.active").mark_bar().encode(
        y=alt.Y("hidden:Q", title="hidden channels", scale=alt.Scale(domain=[0, max_hidden])),
        color=alt.Color("kernel:O", title="kernel", scale=alt.Scale(domain=[3, 5, 7], range=list(KERNEL_COLOURS.values()))),
        tooltip=["stage", "block", "kernel", "expand", "hidden", "out", "stride", "se"],
    )
    ghosts = base.transform_filter("!datum.active").mark_bar(color="white", stroke="#aaa", strokeDash=[3, 3]).encode(
        y="ghost:Q", tooltip=["stage", "block", "status"])
    text = base.mark_text(dy=-6, fontSize=10).encode(y=alt.Y("hidden:Q"), text="label:N")
    return (bars + ghosts + text).properties(height=220).facet(
        column=alt.Column("stage:N", title=None, header=alt.Header(labelFontWeight="bold")),
        spacing=4,
    ).resolve_scale(x="independent")


def topk_chart(labels: list[str], probabilities: list[float], title: str = "", demoted: bool = False) -> alt.Chart:
    """Top-k bars; ``demoted`` (grey) when the image is not one of the classes, so the bars are not read as an answer."""
    df = pd.DataFrame({"class": labels, "probability": probabilities, "rank": range(1, len(labels) + 1)})
    return alt.Chart(df, title=title).mark_bar(color="#b0b7bf" if demoted else "#c0392b").encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        y=alt.Y("class:N", sort=alt.EncodingSortField("rank", order="ascending"), title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=180)),
        tooltip=["class", alt.Tooltip("probability:Q", format=".1%")],
    ).properties(height=alt.Step(26))


def carbon_chart(rows: pd.DataFrame, value: str, title: str) -> alt.Chart:
    """Log-scale bars of design cost per method."""
    return alt.Chart(rows).mark_bar().encode(
        y=alt.Y("method:N", sort="-x", title=None),
        x=alt.X(f"{value}:Q", title=title, scale=alt.Scale(type="log")),
        color=alt.condition(alt.datum.method == "OFA (train once)", alt.value("#27ae60"), alt.value("#7f8c8d")),
        tooltip=["method", alt.Tooltip("gpu_hours:Q", format=",.0f"), alt.Tooltip("co2e_kg:Q", format=",.0f"), "note"],
    ).properties(height=200)


def carbon_vs_n_chart(frame: pd.DataFrame, value: str, title: str) -> alt.Chart:
    """Cost as a function of N for every method (log y)."""
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("N:Q", title="deployment scenarios N"),
        y=alt.Y(f"{value}:Q", title=title, scale=alt.Scale(type="log")),
        color=alt.Color("method:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["method", "N", alt.Tooltip(f"{value}:Q", format=",.0f")],
    ).properties(height=300)


def history_chart(history: list[float]) -> alt.Chart:
    """Best predicted accuracy per generation of a search (y axis zoomed to the data)."""
    df = pd.DataFrame({"generation": range(len(history)), "accuracy": history})
    return alt.Chart(df).mark_line(color="#c0392b").encode(
        x=alt.X("generation:Q", title="generation"),
        y=alt.Y("accuracy:Q", title="best predicted top-1 (%)", scale=alt.Scale(zero=False)),
        tooltip=["generation", alt.Tooltip("accuracy:Q", format=".2f")],
    ).properties(height=180)


def training_progress_chart(progress: pd.DataFrame) -> alt.Chart:
    """Top-1 of the tracked subnets after each training run against cumulative training hours, each with its
    target as a dashed rule of the same colour. ``progress``: :func:`app.training_progress.training_progress`."""
    colour = alt.Color("subnet:N", scale=alt.Scale(range=["#c0392b", "#2471a3"]), legend=alt.Legend(orient="bottom", title=None))
    base = alt.Chart(progress).encode(color=colour)
    lines = base.mark_line(point=True).encode(
        x=alt.X("hours:Q", title="cumulative training time (wall-clock hours on this 2-core CPU)", scale=alt.Scale(zero=True)),
        y=alt.Y("top1:Q", title="top-1 on Imagenette val (%)", scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("run:N", title="run"), "subnet", alt.Tooltip("hours:Q", format=".2f"),
                 alt.Tooltip("top1:Q", title="top-1 (%)", format=".2f")],
    )
    targets = base.mark_rule(strokeDash=[6, 4]).encode(
        y="target:Q", tooltip=["subnet", alt.Tooltip("target:Q", title="target (%)")])
    return (lines + targets).properties(height=300)


def ood_auroc_chart(rows: pd.DataFrame) -> alt.Chart:
    """OOD AUROC against subnet size: ``rows`` columns ``macs_M``, ``auroc``, ``score``, ``r``, ``config`` (one row per
    subnet, resolution and score; from ``pretrained/open_world_eval.json``), with a log-linear trend per score."""
    names = {"msp": "max softmax (subnet)", "energy": "energy (subnet)", "feature": "feature distance (subnet)",
             "gate": "Lite0 gate (ImageNet, not the subnet)"}
    df = rows.assign(score_name=rows["score"].map(names), resolution=rows["r"].map(lambda r: f"{r} px"))
    domain = list(names.values())
    colours = ["#e67e22", "#8e44ad", "#2980b9", "#7f8c8d"]
    x_lo, x_hi = float(df["macs_M"].min()) * 0.9, float(df["macs_M"].max()) * 1.1
    y_lo = max(0.5, float(df["auroc"].min()) - 0.03)
    x = alt.X("macs_M:Q", title="subnet size (million MACs, log scale)", scale=alt.Scale(type="log", domain=[x_lo, x_hi], nice=False))
    y = alt.Y("auroc:Q", title="OOD AUROC", scale=alt.Scale(domain=[y_lo, 1.0]))
    color = alt.Color("score_name:N", title=None, scale=alt.Scale(domain=domain, range=colours),
                      legend=alt.Legend(orient="bottom", columns=2, labelLimit=260))
    points = alt.Chart(df).mark_point(filled=True, size=70, opacity=0.85).encode(
        x=x, y=y, color=color, shape=alt.Shape("resolution:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("score_name:N", title="score"), alt.Tooltip("config:N", title="subnet"),
                 alt.Tooltip("resolution:N"), alt.Tooltip("macs_M:Q", title="MACs (M)", format=".0f"),
                 alt.Tooltip("auroc:Q", format=".3f"), alt.Tooltip("fpr95:Q", title="FPR at 95% TPR (%)", format=".1f")],
    )
    trend = alt.Chart(df).transform_regression("macs_M", "auroc", groupby=["score_name"], method="log").mark_line(
        strokeDash=[4, 3], opacity=0.8).encode(x=x, y=y, color=color)
    return (trend + points).properties(height=320)
