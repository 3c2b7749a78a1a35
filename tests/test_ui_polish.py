"""Readability of the Carbon, Explore and Model-card pages: chart specs (log-scale bars with a base, axes fitted to
the data, the Pareto front) and the model card's training lineage as a table."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import carbon
from app.ui import charts
from app.ui.about_page import parse_lineage, split_lineage

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def _data(spec: dict, layer: dict) -> list[dict]:
    """The rows a layer plots (its own data, or the chart's when Altair hoisted it to the top level)."""
    return spec["datasets"][(layer.get("data") or spec["data"])["name"]]


# ------------------------------------------------------------------ carbon charts
@pytest.mark.parametrize("n, grid", [(40, 433), (1, 1), (1000, 2000)])
def test_carbon_bars_have_a_positive_base_on_a_log_scale(n, grid):
    rows = pd.DataFrame(carbon.cost_table(n, grid))
    spec = charts.carbon_chart(rows, "co2e_kg", "kg CO2e").to_dict()
    bars = [lay for lay in _layers(spec) if (lay["mark"]["type"] if isinstance(lay["mark"], dict) else lay["mark"]) == "bar"]
    assert len(bars) == 1
    enc = bars[0]["encoding"]
    assert enc["x"]["scale"]["type"] == "log"
    data = _data(spec, bars[0])
    assert {r["method"] for r in data} == {m.method for m in carbon.METHODS}
    base_field, value_field = enc["x2"]["field"], enc["x"]["field"]
    for r in data:
        assert 0 < r[base_field] < r[value_field], r  # a bar of positive length starting above zero
    lo, hi = enc["x"]["scale"]["domain"]
    assert 0 < lo <= min(r[base_field] for r in data) and hi >= max(r[value_field] for r in data)


def test_carbon_chart_on_a_zero_grid_still_plots_positive_values():
    rows = pd.DataFrame(carbon.cost_table(40, 0))
    spec = charts.carbon_chart(rows, "co2e_kg", "kg CO2e").to_dict()
    for lay in _layers(spec):
        assert all(r["plotted"] > 0 for r in _data(spec, lay))


def test_carbon_vs_n_chart_is_log_log_with_a_legend_that_wraps():
    curve = pd.DataFrame([r for k in (1, 10, 100, 1000) for r in carbon.cost_table(k)])
    spec = charts.carbon_vs_n_chart(curve, "co2e_kg", "kg CO2e", current_n=40).to_dict()
    lines = next(lay for lay in _layers(spec) if "color" in lay.get("encoding", {}))
    assert lines["encoding"]["x"]["scale"]["type"] == "log" and lines["encoding"]["y"]["scale"]["type"] == "log"
    assert lines["encoding"]["color"]["legend"]["orient"] == "bottom" and lines["encoding"]["color"]["legend"]["columns"] == 2
    assert all(r["co2e_kg"] > 0 for r in _data(spec, lines))
    assert len({r["method"] for r in _data(spec, lines)}) == len(carbon.METHODS)


@pytest.mark.parametrize("value, text", [(0, "0"), (0.42, "0.42"), (1240, "1,240"), (23040, "23,040"),
                                         (205_970, "206k"), (400_000, "400k"), (999_999, "1M"), (1.6e6, "1.6M"),
                                         (4e7, "40M")])
def test_compact_number(value, text):
    assert charts.compact_number(value) == text


# ------------------------------------------------------------------ Pareto front
def _brute_force_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (x lower or equal, y higher or equal, one strictly)."""
    keep = []
    for i, (xi, yi) in enumerate(points):
        if not any(xj <= xi and yj >= yi and (xj < xi or yj > yi) for j, (xj, yj) in enumerate(points) if j != i):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(25))
def test_pareto_front_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 80)
    coarse = seed % 3 == 0  # ties in x, in y and duplicate points
    pts = [((rng.randint(0, 8) if coarse else rng.uniform(5, 100)), (rng.randint(0, 8) if coarse else rng.gauss(89, 1)))
           for _ in range(n)]
    df = pd.DataFrame({"x": [p[0] for p in pts], "y": [p[1] for p in pts], "cfg": [f"c{i}" for i in range(n)]})
    front = charts.pareto_front_points(df, "x", "y")
    assert sorted(front["cfg"]) == sorted(f"c{i}" for i in _brute_force_front(pts))
    assert list(front["x"]) == sorted(front["x"])  # sorted by x, so a step line can be drawn through it
    ys = list(front.drop_duplicates(subset=["x", "y"])["y"])
    assert all(a < b for a, b in zip(ys, ys[1:]))  # accuracy rises strictly along the front


def test_pareto_front_ignores_missing_values_and_empty_frames():
    df = pd.DataFrame({"x": [1.0, None, 3.0], "y": [2.0, 9.0, 1.0]})
    assert list(charts.pareto_front_points(df, "x", "y")["x"]) == [1.0]
    assert charts.pareto_front_points(df.iloc[:0], "x", "y").empty


# ------------------------------------------------------------------ trade-off chart
def _tradeoff_points(seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    groups = ["sampled subnets"] * 60 + ["OFA specialised (published)"] * 8 + ["current subnet"]
    return pd.DataFrame({
        "x": [rng.uniform(10, 60) for _ in groups[:-1]] + [92.4],
        "y": [rng.uniform(88.5, 90.5) for _ in groups[:-1]] + [91.9],
        "group": groups, "name": [f"s{i}" for i in range(len(groups))], "cfg": [f"c{i}" for i in range(len(groups))],
    })


def _pick_param(spec: dict) -> dict:
    params = spec.get("params", []) + [p for lay in _layers(spec) for p in lay.get("params", [])]
    return next(p for p in params if p["name"] == "pick")


def _points_layer(spec: dict) -> dict:
    """The layer the click selection ``pick`` belongs to (Altair may hoist the param to the top with ``views``)."""
    pick = _pick_param(spec)
    return next(lay for lay in _layers(spec) if pick in lay.get("params", []) or lay.get("name") in pick.get("views", []))


def test_tradeoff_chart_axes_fit_the_data_and_the_front_is_drawn():
    pts = _tradeoff_points()
    spec = charts.tradeoff_chart(pts, "x", "y", "latency (ms)", "Bundled supernet (Imagenette, predicted) top-1 (%)").to_dict()
    layers = _layers(spec)
    for axis in ("x", "y"):
        lo, hi = float(pts[axis].min()), float(pts[axis].max())
        pad = 0.1 * (hi - lo)
        for lay in layers:
            scale = lay["encoding"][axis]["scale"]
            assert scale.get("zero") is False and scale.get("nice") is False
            d_lo, d_hi = scale["domain"]
            assert lo - pad <= d_lo <= lo and hi <= d_hi <= hi + pad, (axis, scale["domain"], lo, hi)
    line = next(lay for lay in layers if lay["mark"]["type"] == "line")
    assert line["mark"]["interpolate"] == "step-after"
    front = _data(spec, line)
    expected = charts.pareto_front_points(pts, "x", "y")
    assert [(r["x"], r["y"]) for r in front] == list(zip(expected["x"], expected["y"]))
    assert front[-1]["x"] == 92.4  # the largest subnet is on the front
    # clicking a point still selects its config
    pick = _pick_param(spec)
    assert pick["select"]["fields"] == ["cfg"] and pick["select"]["on"] == "click"
    assert layers.index(line) == 0 and layers.index(_points_layer(spec)) > 0  # the line under the points: clicks reach them


def test_tradeoff_chart_legend_lists_only_groups_shown():
    spec = charts.tradeoff_chart(_tradeoff_points(), "x", "y", "x", "y").to_dict()
    pts = _points_layer(spec)
    assert pts["encoding"]["color"]["legend"]["values"] == ["sampled subnets", "OFA specialised (published)", "current subnet"]


def _without_names(spec: dict) -> dict:
    """A Vega-Lite dict with its data and view names blanked (Altair hashes them; the compiled specs name them)."""
    spec = json.loads(json.dumps({k: v for k, v in spec.items() if k not in ("datasets", "config")}))
    for node in [spec] + _layers(spec) + _layers(spec.get("spec", {})):
        node.pop("data", None)
        node.pop("name", None)
        for p in node.get("params", []):
            p.pop("views", None)
    return spec


def _rows(frame_or_rows) -> list[dict]:
    rows = frame_or_rows.to_dict("records") if isinstance(frame_or_rows, pd.DataFrame) else frame_or_rows
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in rows]


@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_tradeoff_spec_is_the_altair_chart(seed):
    """The fast path Streamlit draws (compiled once, filled per run) is the Altair chart, spec and data."""
    pts = _tradeoff_points(seed).iloc[: 40 + 20 * seed]  # seed 1 drops the current subnet: another legend
    for titles in (("latency (ms)", "top-1 (%)"), ("energy (mJ)", "ImageNet top-1, a long title that wraps (%)")):
        alt_spec = charts.tradeoff_chart(pts, "x", "y", *titles).to_dict()
        fast = charts.tradeoff_spec(pts, *titles)
        assert _without_names(fast) == _without_names(alt_spec)
        for lay_fast, lay_alt in zip(_layers(fast), _layers(alt_spec)):
            assert _rows(fast["datasets"][lay_fast["data"]["name"]]) == _rows(_data(alt_spec, lay_alt))


@pytest.mark.parametrize("compact", ["smallest", "largest", "r160-d23432-k35735735735735735735-e34634634634634634634"])
def test_compiled_architecture_spec_is_the_altair_chart(compact):
    from app.space import SubnetConfig

    cfg = getattr(SubnetConfig, compact)() if compact in ("smallest", "largest") else SubnetConfig.from_compact(compact)
    alt_spec = charts.architecture_chart(cfg, 1.2).to_dict()
    fast = charts.architecture_spec(cfg, 1.2)
    assert _without_names(fast) == _without_names(alt_spec)
    assert _rows(fast["datasets"][fast["data"]["name"]]) == _rows(alt_spec["datasets"][alt_spec["data"]["name"]])


# ------------------------------------------------------------------ model card lineage
CHAIN = ("soup-x: the uniform average of the weights of a, b (no training of its own). Training wall-clock per phase "
         "(2 shared CPU cores), newest run first: recipe r3 (full-6 0.97 h, sandwich-j 0.62 h), which continued recipe "
         "r2 (sandwich-e 1.04 h), which continued recipe r1 (full 0.94 h, depth-234 0.21 h). Total 3.78 h.")


def test_parse_lineage_chain():
    summary, runs, total = parse_lineage(CHAIN)
    assert summary.startswith("soup-x: the uniform average") and "which continued" not in summary
    assert [r["run"] for r in runs] == ["r1", "r2", "r3"]
    assert runs[0]["phases"] == "full 0.94 h, depth-234 0.21 h" and runs[0]["hours"] == pytest.approx(1.15)
    assert runs[-1]["cumulative hours"] == pytest.approx(3.78) and total == pytest.approx(3.78)


def test_parse_lineage_of_a_trained_run():
    text = ("Training wall-clock per phase (2 shared CPU cores), recipe r2: full 1.00 h, sandwich 0.50 h; 1.50 h. "
            "Continued from recipe r1 (full 0.25 h). Total 1.75 h.")
    _, runs, total = parse_lineage(text)
    assert [(r["run"], r["hours"]) for r in runs] == [("r1", 0.25), ("r2", 1.5)] and total == 1.75


def test_split_lineage_keeps_the_rest():
    text = f"# Card\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n{CHAIN}\n## Open world\nSome text.\n"
    before, lineage, after = split_lineage(text)
    assert lineage == CHAIN and before.rstrip().endswith("| 1 | 2 |") and after.lstrip().startswith("## Open world")
    assert split_lineage("no lineage here") == ("no lineage here", "", "")


def test_bundled_model_card_lineage_parses():
    text = (ROOT / "pretrained" / "MODEL_CARD.md").read_text("utf-8")
    _, lineage, after = split_lineage(re.sub(r"<!--.*?-->\n?", "", text, flags=re.S))
    if not lineage:
        pytest.skip("this model card has no lineage paragraph")
    _, runs, total = parse_lineage(lineage)
    assert len(runs) >= 2 and all(r["hours"] > 0 for r in runs)
    if total is not None:
        assert runs[-1]["cumulative hours"] == pytest.approx(total, abs=0.05)
    assert "## Open world" in after or "Open world" not in text


# ------------------------------------------------------------------ the pages
def _page(name: str, **query) -> AppTest:
    from tests.conftest import app_page

    return app_page(name, TIMEOUT, **query)


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("grid", ["433", "0"])
def test_carbon_page_renders_compact_tiles_and_formatted_table(grid):
    at = _page("carbon", grid=grid).run()
    _no_exceptions(at)
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["MnasNet"] == "1.6M GPU-h" and tiles["OFA (train once)"] == "1,240 GPU-h"
    assert all(len(v) <= 12 for v in tiles.values())  # fits four tiles in a row at 1,400 px
    assert len(at.get("vega_lite_chart")) == 2
    table = at.dataframe[0]
    cols = table.proto.columns
    assert all(c in cols for c in ("GPU-hours", "energy (kWh)", "CO2e (kg)", "CO2e (lbs)"))
    assert '"format":"%,.0f"' in cols.replace(" ", "") or "%,." in cols
    assert any("Strubell" in c.value for c in at.caption) and any("Table 1" in c.value for c in at.caption)


def test_carbon_tiles_stay_short_at_the_largest_n():
    at = _page("carbon", n="1000", grid="2000").run()
    _no_exceptions(at)
    assert all(len(m.value) <= 12 for m in at.metric), [m.value for m in at.metric]


def test_explore_page_renders_the_front():
    at = _page("explore").run()
    _no_exceptions(at)
    assert any("Pareto front" in c.value for c in at.caption)


def test_about_page_lineage_in_an_expander():
    at = _page("about").run()
    _no_exceptions(at)
    shown = "\n".join(md.value for md in at.markdown)
    assert "which continued recipe" not in shown and "<!--" not in shown
    assert "## Open world" in shown  # left as it is
    if "which continued recipe" in (ROOT / "pretrained" / "MODEL_CARD.md").read_text("utf-8"):
        lineage = [e for e in at.expander if e.label == "Training lineage"]
        assert len(lineage) == 1
        assert len(lineage[0].table) == 1
        runs = lineage[0].table[0].value
        assert {"run", "phases (wall-clock hours)", "hours"} <= set(runs.columns) and len(runs) >= 2
        assert list(runs["run"])[:2] == ["v1", "v2"]  # oldest first, the recipes' common prefix in the caption


@pytest.mark.parametrize("n, grid", [("1", "433"), ("2", "0")])
def test_carbon_page_few_scenarios_says_when_ofa_pays_off(n, grid):
    at = _page("carbon", n=n, grid=grid).run()
    _no_exceptions(at)
    assert not at.success and any("pays off from N = 3" in i.value for i in at.info)
    at = _page("carbon", n="3").run()
    assert at.success and "1.2× fewer GPU-hours" in at.success[0].value
