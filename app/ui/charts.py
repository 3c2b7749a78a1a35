"""Altair charts of the app: trade-off scatter, architecture diagram, top-5 bars, carbon costs, training progress.

Pure functions from data frames / configs to ``alt.Chart`` objects (no Streamlit here),
so they are testable on their own.
"""

from __future__ import annotations

import json
from functools import lru_cache

import altair as alt
import pandas as pd

from app.space import MAX_DEPTH, STAGES, SubnetConfig, Widths, middle_channels

KERNEL_COLOURS = {3: "#9ecae1", 5: "#4292c6", 7: "#08519c"}


def tradeoff_chart(points: pd.DataFrame, x: str, y: str, x_title: str, y_title: str) -> alt.LayerChart:
    """Accuracy-vs-cost scatter. ``points`` columns: x, y, ``group`` (sampled / specialised /
    current / pinned), ``name``, ``cfg`` (compact string). Clicking a point selects it.

    Both axes fit the data (a small padding, not zero-based), and the Pareto front of the plotted
    points (:func:`pareto_front_points`: the best ``y`` at any ``x`` or less) is drawn as a step line."""
    front = pareto_front_points(points, x, y).drop_duplicates(subset=[x, y])
    return _tradeoff_layers(alt.Chart(points), alt.Chart(front[[x, y]]), x, y, x_title, y_title,
                            padded_domain(points[x]), padded_domain(points[y]), _present_groups(points))


TRADEOFF_GROUPS = ("sampled subnets", "OFA specialised (published)", "search result", "pinned", "current subnet")


def _present_groups(points: pd.DataFrame) -> tuple[str, ...]:
    shown = set(points["group"]) if "group" in points else set(TRADEOFF_GROUPS)
    return tuple(g for g in TRADEOFF_GROUPS if g in shown)


def _tradeoff_layers(points: alt.Chart, front: alt.Chart, x: str, y: str, x_title: str, y_title: str,
                     x_dom: list[float], y_dom: list[float], present: tuple[str, ...]) -> alt.LayerChart:
    """The trade-off chart's layers over the given data (a frame, or a named dataset for :func:`tradeoff_spec`)."""
    sel = alt.selection_point(name="pick", fields=["cfg"], on="click", clear="dblclick")
    groups = list(TRADEOFF_GROUPS)
    colours = ["#b0b7bf", "#e67e22", "#27ae60", "#8e44ad", "#c0392b"]
    x_enc = alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(domain=x_dom, nice=False, zero=False))
    y_enc = alt.Y(f"{y}:Q", title=wrap_title(y_title), scale=alt.Scale(domain=y_dom, nice=False, zero=False))
    base = points.encode(
        x=x_enc,
        y=y_enc,
        color=alt.Color("group:N", scale=alt.Scale(domain=groups, range=colours),
                        legend=alt.Legend(orient="bottom", title=None, values=list(present) or groups, columns=2, labelLimit=200,
                                          labelExpr="replace(datum.label, ' (published)', '')")),  # fits a phone
        tooltip=[alt.Tooltip("name:N", title="subnet"), alt.Tooltip(f"{x}:Q", title=x_title, format=".2f"),
                 alt.Tooltip(f"{y}:Q", title=y_title, format=".2f"), alt.Tooltip("cfg:N", title="config")],
    )
    pts = base.mark_point(filled=True, opacity=0.75).encode(
        size=alt.condition(sel, alt.value(90), alt.value(40)),
        shape=alt.Shape("group:N", scale=alt.Scale(domain=groups, range=["circle", "diamond", "square", "triangle-up", "cross"]), legend=None),
    ).add_params(sel)
    current = base.transform_filter(alt.datum.group == "current subnet").mark_point(filled=True, size=260, shape="cross")
    front_line = front.mark_line(interpolate="step-after", color="#2c3e50", strokeWidth=1.5,
                                 opacity=0.8).encode(x=x_enc, y=y_enc)
    return (front_line + pts + current).properties(height=380)  # the line first: clicks land on the points


# ------------------------------------------------------------------ the hot charts as compiled Vega-Lite
# A slider move redraws the trade-off and architecture charts. Building and validating them with Altair costs
# 35-55 ms of Python per chart per run (measured, docs/load.md), under the GIL
# and a lock Streamlit holds for every Altair conversion, so a room of sessions queues behind it. The specs below
# are the same Altair charts compiled once (validated) over named datasets, then filled per run: data, domains.
_TEMPLATE_ENTRIES = 64


def _compile(chart: alt.TopLevelMixin) -> str:
    """``chart`` as validated Vega-Lite JSON, without Altair's default theme (Streamlit applies its own)."""
    spec = chart.to_dict()
    config = spec.get("config", {})
    for k in ("continuousWidth", "continuousHeight"):  # all that Altair's default theme adds
        config.get("view", {}).pop(k, None)
    for key, part in (("view", config), ("config", spec)):
        if part.get(key) == {}:
            del part[key]
    return json.dumps(spec)


@lru_cache(maxsize=_TEMPLATE_ENTRIES)
def _tradeoff_template(x_title: str, y_title: str, present: tuple[str, ...]) -> str:
    return _compile(_tradeoff_layers(alt.Chart(alt.NamedData(name="points")), alt.Chart(alt.NamedData(name="front")),
                                     "x", "y", x_title, y_title, [0.0, 1.0], [0.0, 1.0], present))


def tradeoff_spec(points: pd.DataFrame, x_title: str, y_title: str) -> dict:
    """:func:`tradeoff_chart` of ``points`` (columns ``x``, ``y``, ``group``, ``name``, ``cfg``) as a Vega-Lite
    dict for ``st.vega_lite_chart`` (its ``datasets`` are data frames), compiled once per titles and legend."""
    spec = json.loads(_tradeoff_template(x_title, y_title, _present_groups(points)))
    domains = {"x": padded_domain(points["x"]), "y": padded_domain(points["y"])}
    for layer in spec["layer"]:
        for axis, dom in domains.items():
            layer["encoding"][axis]["scale"]["domain"] = dom
    front = pareto_front_points(points, "x", "y").drop_duplicates(subset=["x", "y"])
    spec["datasets"] = {"points": points.reset_index(drop=True), "front": front[["x", "y"]].reset_index(drop=True)}
    return spec


@lru_cache(maxsize=8)
def _architecture_template(width_mult: float) -> str:
    return _compile(_architecture_layers(alt.Chart(alt.NamedData(name="blocks")), width_mult))


def architecture_spec(cfg: SubnetConfig, width_mult: float = 1.2) -> dict:
    """:func:`architecture_chart` as a Vega-Lite dict for ``st.vega_lite_chart``, compiled once per width."""
    spec = json.loads(_architecture_template(float(width_mult)))
    spec["datasets"] = {"blocks": _with_ghost(diagram_frame(cfg, width_mult), width_mult)}
    return spec


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


def architecture_chart(cfg: SubnetConfig, width_mult: float = 1.2) -> alt.FacetChart:
    """Blocks as bars: height = hidden channels (width), colour = kernel size, skipped blocks hollow."""
    return _architecture_layers(alt.Chart(_with_ghost(diagram_frame(cfg, width_mult), width_mult)), width_mult)


def _max_hidden(width_mult: float) -> int:
    return middle_channels(Widths.of(width_mult).stages[-2], 6)


def _with_ghost(df: pd.DataFrame, width_mult: float) -> pd.DataFrame:
    df["ghost"] = _max_hidden(width_mult) * 0.15  # the height of a skipped block's hollow bar
    return df


def _architecture_layers(blocks: alt.Chart, width_mult: float) -> alt.FacetChart:
    max_hidden = _max_hidden(width_mult)
    base = blocks.encode(x=alt.X("block:O", title="block (1-20)", axis=alt.Axis(labelAngle=0)))
    bars = base.transform_filter("datum.active").mark_bar().encode(
        y=alt.Y("hidden:Q", title="hidden channels", scale=alt.Scale(domain=[0, max_hidden])),
        color=alt.Color("kernel:O", title="kernel", scale=alt.Scale(domain=[3, 5, 7], range=list(KERNEL_COLOURS.values()))),
        tooltip=["stage:N", "block:Q", "kernel:Q", "expand:Q", "hidden:Q", "out:Q", "stride:Q", "se:N"],
    )
    ghosts = base.transform_filter("!datum.active").mark_bar(color="white", stroke="#aaa", strokeDash=[3, 3]).encode(
        y="ghost:Q", tooltip=["stage:N", "block:Q", "status:N"])
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


def carbon_chart(rows: pd.DataFrame, value: str, title: str) -> alt.LayerChart:
    """Design cost per method as log-scale bars. On a log scale a bar cannot start at zero, so each bar runs
    from a positive base (a decade below the smallest value, :func:`log_base`) to its value, labelled with
    its value. Non-positive values (e.g. a zero-carbon grid) are drawn at the base."""
    methods = list(rows["method"])
    df = rows.copy()
    positive = df[value][df[value] > 0]
    lo = log_base(positive.min() if len(positive) else 1.0)
    df["plotted"] = df[value].clip(lower=lo)
    df["base"] = lo
    df["label"] = [compact_number(v) for v in df[value]]
    hi = float(df["plotted"].max()) * 10  # room for the labels right of the longest bar (log scale)
    x = alt.X("plotted:Q", title=title, scale=alt.Scale(type="log", domain=[lo, hi], nice=False),
              axis=alt.Axis(format="~s", values=[v for v in decades(lo, hi) if lo <= v <= hi], grid=True))
    y = alt.Y("method:N", sort=methods, title=None, axis=alt.Axis(labelLimit=160))
    tooltip = ["method", alt.Tooltip("gpu_hours:Q", title="GPU-hours", format=",.0f"),
               alt.Tooltip("co2e_kg:Q", title="kg CO2e", format=",.0f"), "note"]
    bars = alt.Chart(df).mark_bar().encode(
        y=y, x=x, x2="base:Q", color=alt.Color("method:N", scale=method_colour_scale(methods), legend=None),
        tooltip=tooltip)
    labels = alt.Chart(df).mark_text(align="left", dx=4, fontSize=12).encode(y=y, x=x, text="label:N", tooltip=tooltip)
    return (bars + labels).properties(height=300)


def carbon_vs_n_chart(frame: pd.DataFrame, value: str, title: str, current_n: int | None = None) -> alt.LayerChart:
    """Cost as a function of N for every method, log-log (a per-scenario cost is then a straight line, OFA's
    flat); ``current_n`` marked with a vertical rule. Non-positive values are left out (no place on a log scale)."""
    methods = list(dict.fromkeys(frame["method"]))
    df = frame[frame[value] > 0]
    colour = alt.Color("method:N", scale=method_colour_scale(methods), sort=methods,
                       legend=alt.Legend(orient="bottom", title=None, columns=2, labelLimit=200))
    lines = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("N:Q", title="deployment scenarios N (log scale)", scale=alt.Scale(type="log"),
                axis=alt.Axis(values=[1, 10, 100, 1000], format="~s")),
        y=alt.Y(f"{value}:Q", title=title, scale=alt.Scale(type="log"),
                axis=alt.Axis(format="~s", values=decades(df[value].min(), df[value].max()) if len(df) else alt.Undefined)),
        color=colour,
        tooltip=["method", "N", alt.Tooltip(f"{value}:Q", format=",.0f")],
    )
    layers = [lines]
    if current_n is not None:
        layers.insert(0, alt.Chart(pd.DataFrame({"N": [current_n], "label": [f"N = {current_n}"]})).mark_rule(
            strokeDash=[4, 3], color="#7f8c8d").encode(x="N:Q", tooltip=[alt.Tooltip("label:N", title="now")]))
    return alt.layer(*layers).properties(height=340)  # Streamlit fits axes and the two-row legend into this


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


# ------------------------------------------------------------------ helpers of tradeoff_chart / carbon charts
METHOD_COLOURS = {"OFA (train once)": "#27ae60"}
OTHER_METHOD_COLOURS = ["#2980b9", "#8e44ad", "#c0392b", "#e67e22", "#7f8c8d"]


def pareto_front_points(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The rows of ``points`` not dominated by another row, sorted by ``x``: lower ``x`` (cost) and higher ``y``
    (accuracy) are better, and a row is dominated when another has ``x`` <= and ``y`` >= with one of them strict.
    Identical rows do not dominate each other (all are kept). Rows with a missing ``x`` or ``y`` are ignored."""
    df = points.dropna(subset=[x, y])
    if df.empty:
        return df.copy()
    order = df.sort_values([x, y], ascending=[True, False], kind="mergesort")
    xs, ys = order[x].to_numpy(), order[y].to_numpy()
    keep = []
    best = float("-inf")  # best y among rows of strictly smaller x
    i = 0
    while i < len(xs):
        j = i
        while j < len(xs) and xs[j] == xs[i]:
            j += 1
        top = ys[i]  # the largest y at this x (sorted descending within equal x)
        if top > best:
            keep.extend(k for k in range(i, j) if ys[k] == top)
            best = top
        i = j
    return order.iloc[keep]


def padded_domain(values, pad: float = 0.04, min_span: float = 1e-6) -> list[float]:
    """[min, max] of ``values`` widened by ``pad`` of their span on each side (a fixed small span if all are equal)."""
    s = pd.Series(values, dtype="float64").dropna()
    if s.empty:
        return [0.0, 1.0]
    lo, hi = float(s.min()), float(s.max())
    span = hi - lo if hi > lo else max(abs(hi) * 0.05, min_span)
    return [lo - pad * span, hi + pad * span]


def wrap_title(text: str, width: int = 34) -> str | list[str]:
    """An axis title split into lines of about ``width`` characters (Vega-Lite draws a list as lines)."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return lines[0] if len(lines) == 1 else lines


def decades(lo: float, hi: float) -> list[float]:
    """The powers of ten from the one at or below ``lo`` to the one at or above ``hi`` (> 0): log-axis ticks and
    grid lines at whole decades only."""
    import math

    if not (lo > 0 and hi > 0):
        return []
    return [10.0 ** k for k in range(math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9) + 1)]


def log_base(smallest: float) -> float:
    """The positive start of log-scale bars: the power of ten a decade below ``smallest`` (> 0)."""
    import math

    if not smallest > 0:
        return 1.0
    return 10.0 ** (math.floor(math.log10(smallest)) - 1)


def compact_number(v: float) -> str:
    """Numbers below 100,000 in full with thousands separators ('1,240', '23,040'; below 10 two significant digits,
    '0.42'); larger ones to three significant digits with k / M / G ('206k', '1.6M')."""
    v = float(v)
    if abs(v) < 1e5:
        return f"{v:,.0f}" if abs(v) >= 10 or v == 0 else f"{v:.2g}"
    r = float(f"{v:.3g}")  # 999,999 -> 1e6, so the suffix is chosen after rounding
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(r) >= div:
            return f"{r / div:.3g}{suffix}"
    return f"{r:,.0f}"  # unreachable (|r| >= 1e5)


def method_colour_scale(methods: list[str]) -> alt.Scale:
    """One colour per design method, the same in every carbon chart: OFA green, the others from a fixed list."""
    others = iter(OTHER_METHOD_COLOURS * 4)
    return alt.Scale(domain=list(methods), range=[METHOD_COLOURS.get(m) or next(others) for m in methods])
