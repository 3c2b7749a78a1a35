"""The notebook explorer (app/jupyter): its widgets show the library's numbers, bad input gives one-line messages, its
link is the app's, classification is the library's; and in a real JupyterLab a slider move changes the latency tile."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from app import predictors as P  # noqa: E402
from app import display as shared  # noqa: E402
from app.jupyter import Explorer, Tiles, TradeoffChart  # noqa: E402
from app.jupyter.background import Lane  # noqa: E402
from app.predictors.hardware import bundled_card  # noqa: E402
from app.space import SubnetConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MID = SubnetConfig.from_compact("r176-d33333-k555x555x555x555x555x-e444x444x444x444x444x")


@pytest.fixture(scope="module")
def explorer():
    """One explorer without background prefetching (the tests that need the supernet ask for it)."""
    ex = Explorer(prefetch=False)
    yield ex
    ex.close()


def expected_texts(cfg: SubnetConfig, hw: str) -> dict[str, str]:
    """The tile values formatted straight from the library's prediction."""
    p = P.predict(cfg, hw, bundled_card())
    fmt = lambda m, f: "n/a" if m.value is None else f.format(m.value)  # noqa: E731
    return {"Accuracy (Imagenette)": fmt(p.accuracy_supernet, "{:.1f}%"), "ImageNet top-1 (OFA)": fmt(p.accuracy_imagenet_val, "{:.1f}%"),
            "Latency": fmt(p.latency, "{:.1f} ms"), "Energy": fmt(p.energy, "{:.2f} mJ"),
            "Energy on this device": fmt(p.energy_device, "{:.2f} mJ"), "MACs": fmt(p.macs, "{:.0f} M"),
            "Params": fmt(p.params, "{:.2f} M")}


def current_point(ex: Explorer) -> dict | None:
    """The "current subnet" row of the data the chart widget sends to the browser."""
    rows = [r for data in ex.chart.chart.spec["datasets"].values() for r in data if r.get("group") == "current subnet"]
    return rows[0] if rows else None


def assert_shows(ex: Explorer, cfg: SubnetConfig, hw: str) -> None:
    assert ex.config == cfg and ex.hardware == hw
    assert ex.tiles.values() == expected_texts(cfg, hw)
    b = P.predict_batch([cfg], hw, bundled_card().sha256, bundled_card().width_mult, bundled_card().num_classes)
    point = current_point(ex)
    if b["latency_ms"][0] != b["latency_ms"][0]:  # NaN: no latency at this resolution, so no point (as in the app)
        assert point is None
    else:
        assert point["cfg"] == cfg.to_compact()
        assert point["x"] == pytest.approx(float(b["latency_ms"][0]))
        assert point["y"] == pytest.approx(float(b["accuracy_supernet"][0]))
    assert cfg.to_compact() in ex.header.value


# ----------------------------------------------------------------------------------------------- widget level
def test_each_control_changes_tiles_and_chart_to_the_library_prediction(explorer):
    ex, c = explorer, explorer.controls
    ex.set_config("largest")
    ex.set_hardware("note10")
    expected = SubnetConfig.largest()
    for widget, value, change in (
        (c.depth, 3, lambda cfg: cfg.replace(d=(3,) * 5)),
        (c.expand, 4, lambda cfg: cfg.replace(e=(4,) * 20)),
        (c.kernel, 5, lambda cfg: cfg.replace(ks=(5,) * 20)),
        (c.resolution, 192, lambda cfg: cfg.replace(r=192)),
    ):
        widget.value = value
        expected = change(expected)
        assert_shows(ex, expected, "note10")
    c.hardware.value = "gpu-2080ti-b1"
    assert_shows(ex, expected, "gpu-2080ti-b1")
    c.preset.value = "smallest"
    assert c.preset.value == "—"  # ready for the next pick, as the app's
    assert_shows(ex, SubnetConfig.smallest(128), "gpu-2080ti-b1")
    c.mode.value = "stage"
    assert ex.mode == "stage" and c.stage_box.layout.display == "" and c.quick_box.layout.display == "none"
    c.stage_depth[1].value = 4
    c.stage_kernel[1].value = 7
    c.stage_expand[4].value = 6
    d, ks, e = [2, 4, 2, 2, 2], [3, 7, 3, 3, 3], [3, 3, 3, 3, 6]
    assert_shows(ex, SubnetConfig.per_stage(ks, e, d, 128), "gpu-2080ti-b1")
    assert "mixes values" in c.mixed.value  # the global sliders now show the most common value
    assert (c.depth.value, c.kernel.value, c.expand.value) == (2, 3, 3)
    c.hardware.value = "note10"  # 128 px is below Note10's tables: no latency, a note, no current point
    assert ex.tiles.values()["Latency"] == "n/a" and "Latency:" in ex.tiles.note.value
    assert_shows(ex, ex.config, "note10")
    assert ex.last_message == ""
    ex.set_mode("quick")


def test_bad_values_give_the_apps_one_line_messages(explorer):
    ex = explorer
    ex.set_config(MID)
    ex.set_hardware("note10")

    def library_message(call) -> str:
        with pytest.raises(ValueError) as info:
            call()
        return str(info.value)

    cases = [
        (lambda: ex.set_config("r999-d44444"), library_message(lambda: SubnetConfig.parse("r999-d44444"))),
        (lambda: ex.set_config({"ks": [7] * 20, "e": [6] * 20, "d": [5] * 5}),
         library_message(lambda: SubnetConfig.from_dict({"ks": [7] * 20, "e": [6] * 20, "d": [5] * 5}))),
        (lambda: ex.set_config('{"ks": [7'), library_message(lambda: SubnetConfig.parse('{"ks": [7'))),
        (lambda: ex.set_hardware("toaster"), library_message(lambda: P.predict(MID, "toaster"))),
        (lambda: ex.load_url("http://localhost:8501/explore?cfg=r224-d9&hw=note10"),
         "The link's subnet config was not understood (" + library_message(lambda: SubnetConfig.parse("r224-d9")) + ")"),
        (lambda: ex.load_url("http://localhost:8501/explore?hw=toaster"), library_message(lambda: P.predict(MID, "toaster"))),
    ]
    for call, message in cases:
        assert call() is False
        assert ex.last_message == message and "\n" not in message and "Traceback" not in ex.message.value
        assert ex.config == MID and ex.hardware == "note10"  # nothing changed
    assert ex.load_url("http://localhost:8501/explore?foo=1") is False and ex.last_message.startswith("link: no cfg or hw")
    ex.controls.link.value = "not a config"  # the paste box
    ex.controls.load.click()
    assert ex.last_message.startswith("config: 'not a config' is not a preset")
    ex.controls.link.value = "smallest"
    ex.controls.load.click()
    assert ex.last_message == "" and ex.message.value == "" and ex.config == SubnetConfig.smallest(128)
    fresh = Explorer(hardware="toaster", config="r999", prefetch=False, chart=False)
    assert fresh.config == SubnetConfig.largest() and fresh.hardware == "note10"  # the app's defaults
    assert fresh.last_message.startswith("hardware: unknown target 'toaster'") and "got 'r999'" in fresh.last_message
    fresh.close()


def test_url_round_trips_through_the_apps_parser(explorer):
    ex = explorer
    cfg = SubnetConfig.per_stage([3, 5, 7, 5, 3], [6, 4, 3, 4, 6], [2, 3, 4, 3, 2], 200)
    assert ex.set_config(cfg) and ex.set_hardware("gpu-v100-b1") and ex.set_mode("stage")
    url = ex.url("http://lab.example:8501/")
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("lab.example:8501", "/explore")
    query = parse_qs(parts.query)
    assert SubnetConfig.parse(query["cfg"][0]) == cfg  # what the app's state.config() does with the link
    assert SubnetConfig.from_compact(query["cfg"][0]) == cfg and query["hw"] == ["gpu-v100-b1"] and query["mode"] == ["stage"]
    other = Explorer.from_url(url, prefetch=False, chart=False)
    assert (other.config, other.hardware, other.mode, other.last_message) == (cfg, "gpu-v100-b1", "stage", "")
    assert other.url("http://lab.example:8501") == url
    other.close()
    assert ex.load_url("?cfg=" + SubnetConfig.smallest(160).to_compact())  # a bare query string; hw stays
    assert (ex.config, ex.hardware) == (SubnetConfig.smallest(160), "gpu-v100-b1")
    ex.set_mode("quick")
    assert "mode=" not in ex.url()


def test_clicking_a_chart_point_loads_it(explorer):
    """The selection state JupyterChart receives from the browser when a point is clicked loads that config."""
    ex = explorer
    ex.set_config("largest")
    ex.set_hardware("note10")
    target = SubnetConfig.random(seed=3, r=208)
    picked = target.to_compact()
    ex.chart.chart._vl_selections = {"pick": {"value": {"vlPoint": {"or": [{"cfg": picked}]}}, "store": []}}
    assert_shows(ex, target, "note10")
    assert ex.controls.resolution.value == 208


def test_pieces_stand_alone():
    tiles = Tiles("smallest", "ultra96")
    assert tiles.values() == expected_texts(SubnetConfig.smallest(128), "ultra96")
    chart = TradeoffChart(MID, "gpu-v100-b1", axis=shared.ACCURACY_AXES[1])
    row = chart.points.frame.query("group == 'current subnet'").iloc[0]
    assert row["y"] == pytest.approx(P.predict(MID, "gpu-v100-b1").accuracy_imagenet_val.value)
    assert chart.points.x_title.startswith("latency on ") and chart.points.y_title.startswith("OFA ImageNet (val")
    with pytest.raises(ValueError, match="unknown target"):
        chart.update(MID, "toaster")
    assert chart.points.frame.query("group == 'current subnet'").iloc[0]["cfg"] == MID.to_compact()  # unchanged


def test_chart_javascript_is_bundled_once_and_cached(tmp_path, monkeypatch):
    """The offline chart bundle is written to the cache, and a new kernel (here: reset state) reads it back instead of
    bundling again."""
    import altair as alt

    from app.jupyter import widgets as W

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(W, "_OFFLINE", [])
    monkeypatch.setattr(alt.JupyterChart, "_esm", alt.JupyterChart._esm)
    monkeypatch.setattr(alt.JupyterChart, "_is_offline", False)
    bundled = "/* bundled */ export default {render() {}};"

    def fake_bundle(cls=alt.JupyterChart):
        cls._esm, cls._is_offline = bundled, True

    monkeypatch.setattr(alt.JupyterChart, "enable_offline", fake_bundle)
    assert W._offline_charts() and alt.JupyterChart._esm == bundled
    [cached] = (tmp_path / "ofa-explorer").glob("jupyterchart-*.js")
    assert cached.read_text("utf-8") == bundled

    def must_not_bundle():
        raise AssertionError("bundled again despite the cache")

    monkeypatch.setattr(W, "_OFFLINE", [])
    monkeypatch.setattr(alt.JupyterChart, "_esm", "online")
    monkeypatch.setattr(alt.JupyterChart, "_is_offline", False)
    monkeypatch.setattr(alt.JupyterChart, "enable_offline", must_not_bundle)
    assert W._offline_charts() and alt.JupyterChart._esm == bundled and alt.JupyterChart._is_offline


def test_lane_runs_only_the_latest_job():
    from concurrent.futures import ThreadPoolExecutor

    ran: list[int] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        lane = Lane(pool)
        futures = [lane.submit(lambda i=i: ran.append(i) or i, delay=0.2) for i in range(3)]
        assert futures[2].result(5) == 2 and futures[0].result(5) is None and futures[1].result(5) is None
        boom = lane.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            boom.result(5)
    assert ran == [2]


def test_prefetch_in_the_background_then_classify_like_the_library():
    """A slider move returns at once; BN re-estimation follows in the background after a pause (only for the last of
    quick moves); Classify then gives the library's answer for the same subnet, shown in the panel."""
    from app.classify import classify
    from app.data import load_image

    ex = Explorer(config="smallest", prefetch=True, chart=False)
    try:
        initial = ex.prefetch_lane.latest()
        ex.controls.resolution.value = 132
        first = ex.prefetch_lane.latest()
        ex.controls.resolution.value = 136  # within the pause: the earlier requests are dropped
        assert not ex._is_kept(ex.config)  # nothing was extracted in the kernel's thread
        ex.wait()
        assert initial.result(0) is None and first.result(0) is None and ex._is_kept(SubnetConfig.smallest(136))
        assert not ex._is_kept(SubnetConfig.smallest(132)) and not ex._is_kept(SubnetConfig.smallest(128))
        assert "Subnet ready" in ex.classify_panel.status.value

        sample = ROOT / "assets" / "samples" / "golf_ball_1.jpg"
        ex.classify_panel.image.value = str(sample)
        ex.classify_panel.button.click()
        result = ex.classify_lane.latest().result(120)
        reference = classify(ex.supernet.extract(ex.config, calibrate=True), load_image(sample), ex.supernet.card)
        assert result.labels == reference.labels and result.top1 == "golf ball"
        assert result.probabilities == pytest.approx(reference.probabilities, abs=1e-5)
        assert "golf ball" in ex.classify_panel.result.value and ex.classify_panel.cam.value[:4] == b"\x89PNG"
        assert ex.classify_panel.progress.layout.visibility == "hidden"

        ex.classify_panel.upload.value = ({"name": "broken.jpg", "type": "image/jpeg", "size": 12, "content": memoryview(b"not an image"),
                                           "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
        assert ex.classify_panel.image.value == "upload:broken.jpg"
        with pytest.raises(ValueError) as info:
            ex.classify()
        assert "\n" not in str(info.value) and "Traceback" not in ex.classify_panel.result.value
        assert str(info.value).split(":")[0] in ex.classify_panel.result.value
    finally:
        ex.close()


# ----------------------------------------------------------------------------------------------- real browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
LAB_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source":
               "from app.jupyter import Explorer\nex = Explorer(hardware='note10', config='largest', prefetch=False)\nex"}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (project venv)", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 (no token) in a temp folder holding one notebook, with a private kernelspec that runs
    this interpreter and private settings (no news, no update checks)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    tmp = tmp_path_factory.mktemp("lab")
    (tmp / "work").mkdir()
    (tmp / "work" / "explorer.ipynb").write_text(json.dumps(LAB_NOTEBOOK))
    spec = tmp / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                  "display_name": "Python 3 (project venv)", "language": "python"}))
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTER_PATH=str(tmp / "jupyter"), JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), IPYTHONDIR=str(tmp / "ipython"),
               OFA_EXPLORER_HOME=str(tmp / "home"))
    port = _free_port()
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
                             "--ServerApp.password=", "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True",
                             "--LabApp.extension_manager=readonly", f"--ServerApp.root_dir={tmp / 'work'}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp / "work")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(tmp / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.browser
def test_jupyterlab_slider_changes_the_latency_tile(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1200})
            page.goto(f"{lab}/lab/tree/explorer.ipynb")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                                   timeout=90_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            value = page.locator(".ofa-tile-latency .ofa-tile-value")
            value.wait_for(timeout=90_000)
            before = value.inner_text()
            assert before.endswith(" ms")
            handle = page.locator(".ofa-slider-depth .noUi-handle")
            handle.focus()
            page.keyboard.press("ArrowLeft")  # depth 4 -> 3, as a user tabbing through would
            page.wait_for_function("(v) => document.querySelector('.ofa-tile-latency .ofa-tile-value').innerText !== v",
                                   arg=before, timeout=30_000)
            after = value.inner_text()
            expected = P.predict(SubnetConfig.largest().replace(d=(3,) * 5), "note10", bundled_card()).latency.value
            assert after == f"{expected:.1f} ms" != before
            page.wait_for_function("() => document.querySelector('.ofa-compact').innerText.includes('-d33333-')", timeout=30_000)
            drawn = page.locator(".ofa-tradeoff svg").first
            drawn.wait_for(timeout=30_000)  # the chart's JavaScript came from the kernel (vl-convert), not a CDN
            assert drawn.bounding_box()["width"] > 300 and drawn.bounding_box()["height"] > 300
            points = page.locator(".ofa-tradeoff g.mark-symbol path")
            point = next(points.nth(i) for i in range(points.count()) if (points.nth(i).bounding_box() or {}).get("width", 0) > 2)
            point.scroll_into_view_if_needed()
            box = point.bounding_box()
            shown = page.locator(".ofa-compact").inner_text()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # a point loads its subnet
            page.wait_for_function("(v) => document.querySelector('.ofa-compact').innerText !== v", arg=shown, timeout=30_000)
            SubnetConfig.from_compact(page.locator(".ofa-compact").inner_text())
            errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
            assert errors.count() == 0, errors.all_inner_texts()
            assert page.locator(".ofa-message").count() == 0
        finally:
            browser.close()
