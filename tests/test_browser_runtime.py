"""Inference in the viewer's browser (onnxruntime-web, WASM, 1 thread): the served runtime, the Classify page's
"Run on this device" option in Debian's chromium, and the server's validation of what a browser reports."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from app.ui.browser_report import MAX_LATENCY_MS, MAX_RUNS, BrowserReportError, parse_report

ROOT = Path(__file__).resolve().parent.parent
RID = "0123456789abcdef0123456789abcdef"
SHAPE = (1, 10)


def _report(**overrides) -> str:
    doc = {"request_id": RID, "backend": "wasm", "outputs": [0.5] * 10, "latencies_ms": [3.0, 2.0, 4.0]}
    doc.update(overrides)
    return json.dumps(doc)


# ------------------------------------------------------------------------------------ validation (no browser)
def test_a_valid_report_gives_outputs_and_the_median_latency_with_its_source():
    run = parse_report(_report(), request_id=RID, output_shape=SHAPE)
    assert run.outputs.shape == SHAPE and run.outputs.dtype == np.float32
    assert run.latency_ms == 3.0
    assert run.source == "measured in your browser (WASM, 1 thread)"


BAD = {
    "negative latency": (_report(latencies_ms=[2.0, -1.0]), "negative latency"),
    "NaN latency": (_report().replace("[3.0, 2.0, 4.0]", "[3.0, NaN]"), "not a finite number"),
    "infinite latency": (_report().replace("[3.0, 2.0, 4.0]", "[Infinity]"), "not a finite number"),
    "huge latency": (_report(latencies_ms=[MAX_LATENCY_MS * 10]), "not a measurement"),
    "latency as text": (_report(latencies_ms=["3"]), "not a number"),
    "latency as a boolean": (_report(latencies_ms=[True]), "not a number"),
    "no latencies": (_report(latencies_ms=[]), "no latencies"),
    "too many latencies": (_report(latencies_ms=[1.0] * (MAX_RUNS + 1)), "more than"),
    "NaN output": (_report().replace("[0.5, 0.5", "[NaN, 0.5", 1), "not a finite number"),
    "too many outputs": (_report(outputs=[0.5] * 11), "where the subnet has 10"),
    "too few outputs": (_report(outputs=[0.5] * 9), "where the subnet has 10"),
    "outputs not a list": (_report(outputs="0.5"), "no list of outputs"),
    "malformed JSON": ('{"request_id": "' + RID + '", "outputs": [1,', "not valid JSON"),
    "not an object": ("[1, 2, 3]", "not a JSON object"),
    "not text": (b"{}", "not text"),
    "too large": (" " * 3_000_000, "too large"),
    "another run": (_report(request_id="f" * 32), "another run"),
    "markup as the backend name": (_report(backend="<script>alert(1)</script>"), "unknown backend"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_reports_are_refused_with_one_plain_line_and_nothing_kept(case):
    text, words = BAD[case]
    with pytest.raises(BrowserReportError) as info:
        parse_report(text, request_id=RID, output_shape=SHAPE)
    message = str(info.value)
    assert words in message, message
    assert len(message.splitlines()) == 1 and len(message) < 200
    for internal in ("Traceback", "Error", "float(", "json.", "<", ">"):
        assert internal not in message, message


def test_the_browsers_own_error_is_shown_as_one_plain_line_without_markup():
    text = _report(error='<img src=x onerror="alert(1)">out of memory\nat wasm-function[12]')
    with pytest.raises(BrowserReportError) as info:
        parse_report(text, request_id=RID, output_shape=SHAPE)
    message = str(info.value)
    assert message.startswith("Your browser could not run the subnet (") and "out of memory" in message
    assert "<" not in message and ">" not in message and "\n" not in message and '"' not in message


# ------------------------------------------------------------------------------------ the runtime's files
def test_the_served_runtime_files_match_the_pinned_manifest():
    """What `make` fetched is what the manifest pins (sha256 of each file), with the licence beside it."""
    import subprocess
    import sys

    manifest = json.loads((ROOT / "app/ui/browser_runtime_web/onnxruntime-web.json").read_text())
    assert manifest["version"] == "1.30.0" and manifest["license"] == "MIT"
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in manifest["files"].values())
    check = subprocess.run([sys.executable, str(ROOT / "scripts/fetch_web_runtime.py"), "--check"], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
    assert (ROOT / "static/onnxruntime-web/LICENSE.txt").read_text().startswith("MIT License")


# ------------------------------------------------------------------------------------ in the browser
from tests.test_browser import _goto, _wait_idle, browser, server  # noqa: E402,F401 - one server and browser here


def _browser_logits(page) -> list[float]:
    """Open the in-browser panel's raw outputs and read its logits."""
    page.get_by_text("The subnet's raw outputs in your browser (logits)").click()
    code = page.locator('[data-testid="stExpander"]').filter(has_text="raw outputs in your browser")
    code = code.locator('[data-testid="stCode"]')
    code.wait_for(timeout=30_000)
    return json.loads(code.inner_text())


def _in_browser_answer(page) -> tuple[str, str, list[float]]:
    """Switch the in-browser option on; (its headline, its latency caption, its logits)."""
    page.get_by_text("Run on this device (in your browser)").click()
    headline = page.get_by_text(re.compile(r"This device \(in your browser\) at \d+px"))
    headline.wait_for(timeout=120_000)
    _wait_idle(page)
    caption = page.get_by_text(re.compile(r"^Latency [\d.]+ ms — measured in your browser")).inner_text()
    return headline.inner_text(), caption, _browser_logits(page)


def _pytorch_logits(cfg, image_path: Path) -> np.ndarray:
    import torch

    import app
    from app.data import image_tensor, load_image

    net = app.load_supernet()
    sub = net.extract(cfg, calibrate=True)
    x = image_tensor(load_image(image_path), cfg.r, net.card.mean, net.card.std)
    with torch.no_grad():
        return sub(x)[0].numpy()


@pytest.mark.browser
def test_classify_on_this_device_runs_in_the_browser_and_matches_the_server(server, browser):
    """Smallest subnet at 128 px on an uploaded photo: the browser's top-1 is the server's, its latency is labelled as
    measured in the browser, and its logits equal the PyTorch subnet's to 1e-3."""
    import app

    cfg = app.SubnetConfig.smallest(128)
    img = ROOT / "assets" / "samples" / "church_1.jpg"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _goto(page, f"{server}/classify?cfg={cfg.to_compact()}")
    page.get_by_text("Upload", exact=True).click()
    _wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(img))
    server_line = page.get_by_text(re.compile(r"Current subnet at 128px: "))
    server_line.wait_for(timeout=120_000)
    _wait_idle(page)
    server_top1 = re.search(r"Current subnet at 128px: (.+?) \(\d+%\)", server_line.inner_text()).group(1)
    headline, caption, logits = _in_browser_answer(page)
    assert re.search(rf"at 128px: {re.escape(server_top1)} \(\d+%\) — same top class as this server", headline), headline
    assert "measured in your browser (WASM, 1 thread)" in caption
    ms = float(re.search(r"Latency ([\d.]+) ms", caption).group(1))
    assert 0 < ms < 10_000 and math.isfinite(ms)
    np.testing.assert_allclose(np.array(logits), _pytorch_logits(cfg, img), atol=1e-3)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


@pytest.mark.browser
def test_a_second_subnet_in_the_browser_equals_pytorch(server, browser):
    """A mid-sized subnet (depths 3,4,2,3,4, kernel 5, expand 4) at 128 px on a sample image: in-browser logits
    equal the PyTorch subnet's to 1e-3 (128 px again: the page's largest subnet at 128 px is then cached)."""
    import app

    cfg = app.SubnetConfig.parse("r128-d34234-k" + "5" * 20 + "-e" + "4" * 20)
    sample = "gas_pump_1.jpg"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _goto(page, f"{server}/classify?cfg={cfg.to_compact()}&sample={sample}")
    page.get_by_text(re.compile(r"Current subnet at 128px: ")).wait_for(timeout=120_000)
    _wait_idle(page)
    _, caption, logits = _in_browser_answer(page)
    assert "measured in your browser (WASM, 1 thread)" in caption
    np.testing.assert_allclose(np.array(logits), _pytorch_logits(cfg, ROOT / "assets" / "samples" / sample), atol=1e-3)
    page.close()


# WebGPU needs an adapter: this machine has none but chromium's software one (SwiftShader), which these flags enable.
WEBGPU_ARGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan",
               "--use-vulkan=swiftshader"]


def _webgpu_answer(page, done: str) -> tuple[str, list[float]]:
    """Switch the in-browser option, then WebGPU, on; wait for the text ``done`` (a regex) of the WebGPU run's
    answer; (its latency caption, its logits)."""
    page.get_by_text("Run on this device (in your browser)").click()
    page.get_by_text(re.compile(r"This device \(in your browser\) at \d+px")).wait_for(timeout=120_000)
    _wait_idle(page)
    page.get_by_text("Use WebGPU where this browser has it").click()
    page.get_by_text(re.compile(done)).first.wait_for(timeout=120_000)
    _wait_idle(page)
    caption = page.get_by_text(re.compile(r"^Latency [\d.]+ ms — measured in your browser")).inner_text()
    return caption, _browser_logits(page)


@pytest.mark.browser
def test_webgpu_runs_the_subnet_where_the_browser_has_it_and_equals_pytorch(server, browser):
    """With a WebGPU adapter (chromium's software one) on a secure page (the app on 127.0.0.1), the subnet runs on
    WebGPU: the latency says so and the logits equal the PyTorch subnet's to 1e-3."""
    import app
    from tests.test_browser import ARGS, CHROMIUM

    cfg = app.SubnetConfig.smallest(128)
    sample = "church_1.jpg"
    b = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=ARGS + WEBGPU_ARGS)
    try:
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        _goto(page, f"{server}/classify?cfg={cfg.to_compact()}&sample={sample}")
        page.get_by_text(re.compile(r"Current subnet at 128px: ")).wait_for(timeout=120_000)
        _wait_idle(page)
        assert page.evaluate("async () => !!(navigator.gpu && await navigator.gpu.requestAdapter())")
        caption, logits = _webgpu_answer(page, r"measured in your browser \(WebGPU\)")
        assert "measured in your browser (WebGPU)" in caption, caption
        np.testing.assert_allclose(np.array(logits), _pytorch_logits(cfg, ROOT / "assets" / "samples" / sample), atol=1e-3)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        b.close()


@pytest.mark.browser
def test_webgpu_asked_without_an_adapter_runs_on_wasm_and_says_so(server, browser):
    """The test browser has no WebGPU adapter (--disable-gpu): asking for WebGPU runs on WASM, labelled as such,
    with one line saying why, and the same logits."""
    import app

    cfg = app.SubnetConfig.smallest(128)
    sample = "church_1.jpg"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _goto(page, f"{server}/classify?cfg={cfg.to_compact()}&sample={sample}")
    page.get_by_text(re.compile(r"Current subnet at 128px: ")).wait_for(timeout=120_000)
    _wait_idle(page)
    caption, logits = _webgpu_answer(page, "WebGPU is not available here")
    assert "measured in your browser (WASM, 1 thread)" in caption, caption
    assert page.get_by_text(re.compile("WebGPU is not available here")).count() == 1
    np.testing.assert_allclose(np.array(logits), _pytorch_logits(cfg, ROOT / "assets" / "samples" / sample), atol=1e-3)
    page.close()


@pytest.mark.browser
def test_this_device_profiles_itself_becomes_a_target_and_specialise_checks_the_found_subnet_on_it(server, browser):
    """End to end in chromium: Explore's panel profiles the page's own device on the probe subnets (progress shown),
    the device appears in the hardware picker with its source, Specialise searches under a latency budget on it, and
    the found subnet is then timed in the browser beside its prediction."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _goto(page, f"{server}/explore")
    page.get_by_text("Add this device as a hardware target").click()
    page.get_by_role("button", name="Profile this device").click()
    page.locator(".ofa-browser-progress").first.wait_for(state="visible", timeout=60_000)
    picker = page.locator('[data-testid="stSelectbox"]').filter(has_text="Hardware target")
    page.wait_for_function("() => location.search.includes('hw=device-')", timeout=120_000)
    _wait_idle(page)
    picked = picker.locator("input").first
    assert picked.input_value() == "This device: headless Chrome on Linux · measured"
    assert "hw=device-" in page.url
    tiles = page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
    assert "measured in your browser · measured · fp32" in tiles  # the latency tile's short source (the full one is its tooltip)
    latency = page.locator('[data-testid="stMetric"]').filter(has_text="Latency").locator('[data-testid="stMetricValue"]')
    assert re.fullmatch(r"[\d.]+ ms", latency.first.inner_text().strip())

    page.locator('[data-testid="stSidebarNav"], [data-testid="stSidebar"]').get_by_text("Specialise", exact=True).first.click()
    _wait_idle(page)
    assert "hw=device-" in page.url
    limit = page.get_by_label("Maximum (ms)")
    limit.fill("40")
    limit.press("Enter")
    _wait_idle(page)
    page.get_by_role("button", name="Search").click()
    page.get_by_text(re.compile(r"^Found r\d+-d")).wait_for(timeout=120_000)
    measured = page.locator('[data-testid="stMetric"]').filter(has_text="On this device: measured in your browser")
    measured.wait_for(timeout=120_000)
    text = measured.inner_text()
    got = float(re.search(r"([\d.]+) ms", text).group(1))
    predicted = float(re.search(r"predicted ([\d.]+) ms", text).group(1))
    assert predicted <= 40 and 0 < got < 10_000
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()
