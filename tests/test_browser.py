"""End-to-end in a real headless browser: Debian's chromium driven by Playwright against ``streamlit run``.

The test starts the app on 127.0.0.1 and a free port, waits for ``/_stcore/health``,
then drives it like a user. Skipped (with the reason) when chromium or playwright is
missing; ``make test`` installs both.
"""

from __future__ import annotations

import json
import shutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    pytest.importorskip("playwright.sync_api")
    from app.ui.serve import serving

    with serving() as app:
        yield app.url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _wait_idle(page, timeout=60_000) -> None:
    """Wait until Streamlit has finished running the script: the app reports ``notRunning`` and shows no spinner,
    twice in a row 250 ms apart (a rerun can start right after a run ends)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    idle = ("() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
            " return a && a.getAttribute('data-test-script-state') === 'notRunning'"
            " && !document.querySelector('[data-testid=\"stSpinner\"]'); }")
    for _ in range(2):
        page.wait_for_function(idle, timeout=timeout)
        page.wait_for_timeout(250)
    page.wait_for_function(idle, timeout=timeout)


def _metric_values(page) -> list[str]:
    return page.locator('[data-testid="stMetricValue"]').all_inner_texts()


def _goto(page, url: str) -> None:
    page.goto(url)
    _wait_idle(page)
    # no modal (e.g. Streamlit's "page not found") may cover the app
    assert page.locator('[role="dialog"]').count() == 0, page.locator('[role="dialog"]').first.inner_text()


def test_explore_slider_changes_metrics_and_url(server, browser):
    page = browser.new_page()
    _goto(page, server + "/")
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=90_000)
    before = _metric_values(page)
    # move the depth slider one step left with the keyboard, as a user tabbing through would
    slider = page.get_by_role("slider", name="Depth (blocks per stage)")
    slider.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => location.href.includes('-d33333-')", timeout=60_000)
    page.wait_for_function("(v) => JSON.stringify([...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                           ".map(e => e.innerText)) !== v", arg=json.dumps(before), timeout=60_000)
    _wait_idle(page)
    after = _metric_values(page)
    assert after != before
    assert slider.get_attribute("aria-valuetext") == "3"
    page.close()


def test_shared_url_reproduces_config(server, browser):
    from app.space import SubnetConfig

    # depths 2,3,4,3,2; the values given for skipped blocks are irrelevant
    raw = "r160-d23432-k" + "3577" + "5735" + "7735" + "3575" + "7575" + "-e" + "3466" + "6443" + "4663" + "3346" + "4666"
    cfg = SubnetConfig.parse(raw).to_compact()  # blocks skipped by depth print as x
    assert cfg != raw
    page = browser.new_page()
    _goto(page, f"{server}/?cfg={raw}&hw=note10&mode=stage")
    page.wait_for_selector(f"text={cfg}", timeout=90_000)
    assert f"cfg={cfg}" in page.url
    # the per-stage editor shows the link's depths
    assert page.get_by_role("slider", name="Input resolution (px)").get_attribute("aria-valuetext") == "160"
    page.close()


def test_upload_gives_top5(server, browser):
    img = ROOT / "assets" / "samples" / "church_1.jpg"
    page = browser.new_page()
    _goto(page, server + "/classify")
    page.get_by_text("Upload", exact=True).click()
    _wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(img))
    page.get_by_text(re.compile(r"Largest subnet at \d+px")).wait_for(timeout=120_000)
    _wait_idle(page)
    page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=60_000)
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2
    assert "church" in page.get_by_text(re.compile(r"Current subnet at \d+px")).inner_text().lower()
    page.close()


def test_search_finds_a_subnet(server, browser):
    page = browser.new_page()
    _goto(page, server + "/specialise")
    page.get_by_role("button", name="Search").click()
    found = page.get_by_text(re.compile(r"Found r\d+-d\d{5}-"))
    found.wait_for(timeout=120_000)
    assert "predicted" in found.inner_text()
    page.close()


def _upload_on_classify(server, browser, path: Path):
    page = browser.new_page()
    _goto(page, server + "/classify")
    page.get_by_text("Upload", exact=True).click()
    _wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    return page


def test_out_of_class_photo_is_flagged(server, browser):
    """A real photo of a class the supernet does not know (a tabby cat; ../shared, ImageNet terms) gets the clear
    message, the gate's guess, and the subnet's bars still shown (greyed), plus a Grad-CAM overlay."""
    from tests.conftest import shared_path

    cat = shared_path("data", "imagenet-samples", "n02123045_tabby.JPEG")
    page = _upload_on_classify(server, browser, cat)
    page.get_by_text(re.compile(r"Largest subnet at \d+px")).wait_for(timeout=120_000)
    _wait_idle(page)
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="Not one of the 10 classes this supernet knows")
    assert alert.count() >= 1
    assert "gate's own ImageNet guess" in page.locator("body").inner_text()
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2
    assert page.get_by_text(re.compile("where it looked for")).count() == 2
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_non_image_upload_gives_one_plain_line(server, browser, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"these are my notes, not a photo\n" * 40)
    page = _upload_on_classify(server, browser, bad)
    err = page.locator('[data-testid="stAlert"]').filter(has_text="Cannot classify")
    err.wait_for(timeout=60_000)
    text = err.inner_text().strip()
    assert "not an image the app can read" in text and len(text.splitlines()) == 1, text
    for internal in ("Error", "BytesIO", "0x", "Traceback"):
        assert internal not in text, text
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


# every page, by its own URL, as a visitor following a shared link would open it
PAGE_URLS = ["", "explore", "classify", "specialise", "compare", "carbon", "about", "present", "join"]

_DRAWN_MARKS = """(el) => {
  // Vega draws SVG here: count the items of its data marks (not axes, legends or titles) that have a visible size
  const items = [...el.querySelectorAll('svg g.role-mark')].flatMap(g => [...g.children]);
  return items.filter(e => { try { const b = e.getBBox(); return b.width > 0.5 && b.height > 0.5; } catch (x) { return false; } }).length;
}"""

_TRUNCATED_TILES = """() => [...document.querySelectorAll('[data-testid="stMetricValue"]')]
  .filter(e => [e, ...e.querySelectorAll('*')].some(x => x.scrollWidth > x.clientWidth + 1))
  .map(e => e.innerText)"""


@pytest.mark.parametrize("path", PAGE_URLS)
def test_every_page_opens_by_its_url_whole_and_drawn(server, browser, path):
    """No "page not found" dialog, no exception box, no raw markup, every chart has drawn marks,
    no metric tile cut at the desktop width."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _goto(page, f"{server}/{path}")
    page.wait_for_timeout(1500)  # charts render after the script run
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()
    text = page.locator('[data-testid="stMain"]').inner_text()
    for markup in ("<!--", "-->", "</", "&lt;", "&gt;", "**"):
        assert markup not in text, (path, markup)
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):
        charts.nth(i).scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        assert charts.nth(i).evaluate(_DRAWN_MARKS) > 0, f"/{path}: chart {i + 1} of {charts.count()} draws no marks"
    assert page.evaluate(_TRUNCATED_TILES) == [], path
    page.close()


def test_export_download_loads_and_matches_the_live_subnet(server, browser, tmp_path):
    """Explore → Export this subnet → ONNX → Prepare → Download: the downloaded file runs in onnxruntime and gives
    the live subnet's outputs on a real image."""
    import numpy as np
    import onnxruntime as ort
    import torch

    import app
    from app.data import image_tensor, load_image

    cfg = app.SubnetConfig.smallest(160)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    _goto(page, f"{server}/explore?cfg={cfg.to_compact()}&hw=note10")
    page.get_by_text("Export this subnet").click()
    page.get_by_text("ONNX", exact=True).click()
    _wait_idle(page)
    page.get_by_role("button", name="Prepare download").click()
    button = page.get_by_role("button", name=re.compile(r"Download ofa_subnet_.*\.onnx"))
    button.wait_for(timeout=120_000)
    with page.expect_download(timeout=60_000) as info:
        button.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    page.close()
    assert path.name == f"ofa_subnet_{cfg.to_compact()}.onnx"
    net = app.load_supernet()
    sub = net.extract(cfg, calibrate=True)
    x = image_tensor(load_image(ROOT / "assets" / "samples" / "gas_pump_1.jpg"), cfg.r, net.card.mean, net.card.std)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, sub(x).numpy(), atol=1e-3)


def test_clicking_a_point_on_the_tradeoff_chart_loads_it_into_the_page_and_the_url(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _goto(page, server + "/explore")
    before = page.url
    chart = page.locator('[data-testid="stVegaLiteChart"]').nth(1)
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    points = chart.locator("g.mark-symbol path")
    box = next(b for b in (points.nth(i).bounding_box() for i in range(points.count())) if b and b["width"] > 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("(u) => location.href !== u", arg=before, timeout=60_000)
    _wait_idle(page)
    cfg = page.url.split("cfg=")[1].split("&")[0]
    assert cfg != "r224-d44444-k77777777777777777777-e66666666666666666666"
    assert page.get_by_text(cfg, exact=True).count() >= 1  # the page shows the subnet the URL names
    page.close()


def test_precision_control_changes_the_shown_latency_and_keeps_it_in_the_url(server, browser):
    """Explore's Precision control: int8 on the Note10 (no int8 measurement) replaces the latency by "n/a" and says why;
    the URL carries prec=int8, and opening that URL shows int8 again."""
    page = browser.new_page()
    _goto(page, server + "/?hw=note10")
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=90_000)
    latency = page.locator('[data-testid="stMetric"]').filter(has_text="Latency").locator('[data-testid="stMetricValue"]')
    before = latency.inner_text()
    assert before.endswith("ms")
    page.get_by_role("radiogroup", name="Precision").get_by_text("int8", exact=True).click()
    page.wait_for_function("() => location.href.includes('prec=int8')", timeout=60_000)
    _wait_idle(page)
    assert latency.inner_text() == "n/a"
    assert page.get_by_text("no int8 measurement for this target").first.is_visible()
    url = page.url
    page.close()
    page = browser.new_page()
    _goto(page, url)
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=90_000)
    assert page.get_by_role("radiogroup", name="Precision").get_by_role("radio", name="int8").is_checked()
    page.close()
