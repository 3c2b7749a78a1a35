"""Presenter mode (issue 31, item 4): the room store's bounds and validation, the median-device model, the Join page's
answers to bad links, and — in Debian's chromium — a presenter and three audience browsers (one an emulated phone)
in one room: the presenter's strip fills with the three devices and the QR code on the page decodes to the join URL."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from app.room import (CODE_LENGTH, MAX_DEVICES, MAX_ROOMS, InMemoryRooms, RoomError, RoomFull, Rooms, UnknownRoom,
                      new_device_id)
from app.room_redis import RedisRooms
from app.space import SubnetConfig

ROOT = Path(__file__).resolve().parent.parent
LARGEST = SubnetConfig.largest().to_compact()
SMALLEST = SubnetConfig.smallest().to_compact()
CHROME = "headless Chrome on Linux"


def _ids(n: int) -> list[str]:
    return [f"{i:016x}" for i in range(n)]


def _assert_one_plain_line(message: str) -> None:
    assert message and len(message.splitlines()) == 1 and len(message) < 200, message
    for internal in ("Traceback", "Error", "Exception", "<", ">", "\\x", "None", "nan", "inf"):
        assert internal not in message, message


# ------------------------------------------------------------------------------------------------ the store's bounds
# Every store test runs on both stores: in this process's memory (one server) and in Redis (replicas share it).
@pytest.fixture(params=["memory", "redis"])
def make_store(request):
    """A factory of empty stores of one kind (each Redis store under its own key prefix: independent)."""
    if request.param == "memory":
        return InMemoryRooms
    url = request.getfixturevalue("redis_url")
    return lambda **kw: RedisRooms(url, prefix=f"test-{new_device_id()}:", **kw)


def test_both_stores_are_rooms_stores(make_store):
    assert isinstance(make_store(), Rooms)
    assert MAX_DEVICES == 500 and MAX_ROOMS >= 1


def test_a_room_holds_its_presenters_view_and_each_devices_last_measurement(make_store):
    rooms = make_store()
    code = rooms.open(LARGEST, "note10")
    assert re.fullmatch(rf"[A-Z2-9]{{{CODE_LENGTH}}}", code)
    a, b = new_device_id(), new_device_id()
    assert a != b
    rooms.report(code, a, "Chrome on Android", LARGEST, 80.0)
    rooms.report(code, b, CHROME, LARGEST, 20.0)
    rooms.report(code, a, "Chrome on Android", LARGEST, 60.0)  # an update, not a new device
    view = rooms.view(code)
    assert (view.config, view.hardware) == (LARGEST, "note10")
    assert [(d.family, d.latency_ms) for d in view.devices] == [("Chrome on Android", 60.0), (CHROME, 20.0)]
    assert view.median_ms() == 40.0
    rooms.present(code, SMALLEST, "ultra96")  # the presenter moved on: no one has measured the new subnet yet
    view = rooms.view(code)
    assert (view.config, view.hardware) == (SMALLEST, "ultra96")
    assert view.measured() == () and view.median_ms() is None and len(view.measured(LARGEST)) == 2
    assert rooms.leave(code, a) and not rooms.leave(code, a)
    assert len(rooms.view(code).devices) == 1


def test_a_full_room_refuses_a_new_device_politely_and_still_takes_updates_from_its_devices(make_store):
    rooms = make_store()
    code = rooms.open(LARGEST, "note10")
    ids = _ids(MAX_DEVICES + 1)
    for i, device_id in enumerate(ids[:MAX_DEVICES]):
        rooms.report(code, device_id, CHROME, LARGEST, 10.0 + i)
    before = rooms.view(code)
    with pytest.raises(RoomFull) as info:
        rooms.report(code, ids[-1], CHROME, LARGEST, 5.0)
    message = str(info.value)
    _assert_one_plain_line(message)
    assert "full" in message and "500" in message and "sorry" in message
    assert rooms.view(code) == before  # nothing stored
    rooms.report(code, ids[0], "Safari on iOS", LARGEST, 7.5)  # a device already in the room may update
    after = rooms.view(code)
    assert len(after.devices) == MAX_DEVICES
    assert (after.devices[0].family, after.devices[0].latency_ms) == ("Safari on iOS", 7.5)
    rooms.leave(code, ids[1])  # a place is free again
    rooms.report(code, ids[-1], CHROME, LARGEST, 5.0)
    assert len(rooms.view(code).devices) == MAX_DEVICES


def test_rooms_are_bounded_the_room_idle_longest_goes_first(make_store):
    rooms = make_store(max_rooms=3)
    first, second, third = (rooms.open(LARGEST, "note10") for _ in range(3))
    rooms.view(first)  # someone looks at the first room: the second is now the one idle longest
    fourth = rooms.open(LARGEST, "note10")
    assert len(rooms) == 3
    with pytest.raises(UnknownRoom) as info:
        rooms.view(second)
    _assert_one_plain_line(str(info.value))
    for code in (first, third, fourth):
        rooms.view(code)


def test_a_room_idle_too_long_is_gone(make_store):
    now = [1000.0]
    rooms = make_store(idle_seconds=60.0, clock=lambda: now[0])
    code = rooms.open(LARGEST, "note10")
    now[0] += 59.0
    rooms.report(code, _ids(1)[0], CHROME, LARGEST, 12.0)  # in use: its idle time starts again
    now[0] += 59.0
    assert len(rooms.view(code).devices) == 1
    now[0] += 61.0
    with pytest.raises(UnknownRoom):
        rooms.report(code, _ids(1)[0], CHROME, LARGEST, 12.0)
    assert len(rooms) == 0


def test_the_default_store_is_bounded_to_twenty_rooms(make_store):
    rooms = make_store()
    codes = [rooms.open(LARGEST, "note10") for _ in range(MAX_ROOMS + 5)]
    assert len(rooms) == MAX_ROOMS == 20
    with pytest.raises(UnknownRoom):
        rooms.view(codes[0])
    rooms.view(codes[-1])


def test_concurrent_reports_never_overfill_a_room(make_store):
    rooms = make_store(max_devices=50)
    code = rooms.open(LARGEST, "note10")
    refused = []
    ids = _ids(80)

    def join(chunk):
        for device_id in chunk:
            try:
                rooms.report(code, device_id, CHROME, LARGEST, 10.0)
            except RoomFull:
                refused.append(device_id)

    threads = [threading.Thread(target=join, args=(ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rooms.view(code).devices) == 50 and len(refused) == 30


# ------------------------------------------------------------------------------------------------ validation
GOOD = {"device_id": "0123456789abcdef", "family": CHROME, "config": LARGEST, "latency_ms": 25.0}
BAD = {
    "negative latency": ({"latency_ms": -3.0}, "not above zero"),
    "zero latency": ({"latency_ms": 0.0}, "not above zero"),
    "NaN latency": ({"latency_ms": float("nan")}, "not a finite number"),
    "infinite latency": ({"latency_ms": float("inf")}, "not a finite number"),
    "huge latency": ({"latency_ms": 600_000.0}, "not a measurement"),
    "latency as text": ({"latency_ms": "25"}, "not a number"),
    "latency as a boolean": ({"latency_ms": True}, "not a number"),
    "no latency": ({"latency_ms": None}, "not a number"),
    "malformed config": ({"config": "r224-d44444-kxyz"}, "not a subnet"),
    "config out of the space": ({"config": "r999-d44444-k" + "7" * 20 + "-e" + "6" * 20}, "not a subnet"),
    "config as broken JSON": ({"config": '{"ks": [7'}, "not a subnet"),
    "config as JSON of the wrong shape": ({"config": '{"ks": 7}'}, "not a subnet"),
    "empty config": ({"config": ""}, "not a subnet"),
    "huge config": ({"config": "r224-" * 10_000}, "not a subnet"),
    "device name with markup": ({"device_id": "<script>alert(1)</script>"}, "device name"),
    "device name too short": ({"device_id": "abc"}, "device name"),
    "device name in capitals": ({"device_id": "0123456789ABCDEF"}, "device name"),
    "device name not text": ({"device_id": 12345678901234567}, "device name"),
    "family with markup": ({"family": '<img src=x onerror="alert(1)">'}, "browser name"),
    "family too long": ({"family": "Chrome " * 40}, "browser name"),
    "empty family": ({"family": ""}, "browser name"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_reports_are_refused_with_one_plain_line_and_nothing_is_stored(case, make_store):
    change, words = BAD[case]
    rooms = make_store()
    code = rooms.open(LARGEST, "note10")
    rooms.report(code, "fedcba9876543210", CHROME, LARGEST, 30.0)
    before = rooms.view(code)
    with pytest.raises(RoomError) as info:
        rooms.report(code, **{**GOOD, **change})
    message = str(info.value)
    _assert_one_plain_line(message)
    assert words in message, message
    assert rooms.view(code) == before


@pytest.mark.parametrize("code", ["abc", "ABCDE", "ABCDEFG", "ABCDE0", "ABCDEI", "<b>AB</b>", "", None, 123456],
                         ids=["lower", "short", "long", "zero", "letter I", "markup", "empty", "none", "number"])
def test_bad_room_codes_are_refused_with_one_plain_line(code, make_store):
    rooms = make_store()
    rooms.open(LARGEST, "note10")
    for call in (lambda: rooms.view(code), lambda: rooms.report(code, **GOOD), lambda: rooms.present(code, LARGEST, "note10"),
                 lambda: rooms.leave(code, GOOD["device_id"])):
        with pytest.raises(RoomError) as info:
            call()
        _assert_one_plain_line(str(info.value))
        assert "room code" in str(info.value)


def test_an_unknown_room_is_one_plain_line_and_the_presenter_cannot_set_nonsense(make_store):
    rooms = make_store()
    with pytest.raises(UnknownRoom) as info:
        rooms.report("ABCDEF", **GOOD)
    _assert_one_plain_line(str(info.value))
    assert "not open" in str(info.value)
    code = rooms.open(LARGEST, "note10")
    for config, hardware in (("nonsense", "note10"), (LARGEST, "<script>"), (LARGEST, ""), (None, "note10")):
        with pytest.raises(RoomError) as info:
            rooms.present(code, config, hardware)
        _assert_one_plain_line(str(info.value))
    with pytest.raises(RoomError):
        rooms.open("nonsense", "note10")
    assert len(rooms) == 1 and rooms.view(code).config == LARGEST


def test_configs_are_kept_in_their_compact_form(make_store):
    rooms = make_store()
    code = rooms.open(SubnetConfig.largest().to_json(), "note10")
    assert rooms.view(code).config == LARGEST


# ------------------------------------------------------------------------------------------------ the median device
def test_the_median_device_model_predicts_the_median_for_the_presenters_subnet_and_keeps_the_proportions():
    from app.predictors.encoding import encode
    from app.predictors.median_device import median_device_model, reference_model

    ref = reference_model()
    assert ref.model.coef and ref.source
    cfg, other = SubnetConfig.largest(), SubnetConfig.smallest(160)
    model = median_device_model(ref.model, cfg, 123.0)
    ours, theirs = model.batch(encode([cfg, other])), ref.model.batch(encode([cfg, other]))
    assert ours[0] == pytest.approx(123.0, rel=1e-9)
    assert ours[1] / ours[0] == pytest.approx(theirs[1] / theirs[0], rel=1e-9)
    assert median_device_model(ref.model, cfg, 123.01) == model  # one model (and one cached search) per 0.1 ms
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            median_device_model(ref.model, cfg, bad)


def test_the_reference_is_the_bundled_browser_model_and_a_bad_reference_file_is_one_line(tmp_path):
    import json

    from app.predictors.device import FEATURES
    from app.predictors.median_device import REFERENCE_FILE, load_reference, reference_model

    ref = reference_model()
    assert REFERENCE_FILE.is_file() and len(ref.model.coef) == len(FEATURES)
    assert "headless chromium" in ref.source and "WASM" in ref.source
    good = json.loads(REFERENCE_FILE.read_text())
    bad = {"missing": None, "not JSON": "{", "no coef": {**good, "coef": None},
           "other features": {**good, "features": ["MACs"]}, "negative": {**good, "coef": [-1.0] * len(FEATURES)},
           "too few": {**good, "coef": [1.0]}}
    for name, doc in bad.items():
        path = tmp_path / f"{name}.json"
        if doc is not None:
            path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        with pytest.raises(ValueError) as info:
            load_reference(path)
        assert "reference device model" in str(info.value) and len(str(info.value).splitlines()) == 1, name


def test_the_subnet_specialised_for_the_median_device_meets_the_budget_and_is_cached():
    from app.predictors.hardware import bundled_card
    from app.ui.present_page import specialised_for_median

    card = bundled_card()
    cfg = SubnetConfig.largest()
    model, budget, found = specialised_for_median(cfg, 80.0, None, card)
    assert budget == pytest.approx(80.0, rel=2e-3)  # default: the subnet on screen's latency on the median device
    assert not isinstance(found, str), found
    assert found.metrics["latency_ms"] <= budget
    again = specialised_for_median(cfg, 80.02, None, card)
    assert again[2] is found  # same rounded median and budget: no new search
    _, tight, nothing = specialised_for_median(cfg, 80.0, 0.5, card)
    assert tight == 0.5 and isinstance(nothing, str) and "raise the budget" in nothing
    _assert_one_plain_line(nothing)


# ------------------------------------------------------------------------------------------------ the join URL and QR code
def _zbarimg() -> str:
    path = shutil.which("zbarimg")
    if path is None:
        pytest.skip("Debian's zbar-tools is not installed (make test installs it)")
    return path


def _decode(png: Path) -> str:
    out = subprocess.run([_zbarimg(), "--raw", "-q", str(png)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_qr_code_decodes_to_the_join_url_with_the_presenters_view(tmp_path):
    from urllib.parse import parse_qs, urlsplit

    from app.ui.present_page import join_url, qr_png

    cfg = SubnetConfig.smallest(160)
    url = join_url("http://192.168.1.20:8501", "ABC234", cfg, "gpu-titan_rtx-b1")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "192.168.1.20:8501", "/join")
    assert parse_qs(parts.query) == {"room": ["ABC234"], "cfg": [cfg.to_compact()], "hw": ["gpu-titan_rtx-b1"]}
    png, width = qr_png(url)
    assert 300 <= width <= 600
    (tmp_path / "qr.png").write_bytes(png)
    assert _decode(tmp_path / "qr.png") == url


def test_loopback_addresses_are_recognised():
    from app.ui.present_page import is_loopback

    assert is_loopback("http://localhost:8501") and is_loopback("http://127.0.0.1:9") and is_loopback("http://[::1]:8501")
    assert not is_loopback("http://192.168.1.20:8501") and not is_loopback("https://talk.example.org")


def test_the_strip_has_one_dot_per_device_in_a_row_and_colour_per_family():
    from app.room import Device
    from app.ui.present_page import strip_chart, strip_frame

    devices = [Device(CHROME, LARGEST, 20.0, 0.0), Device("Chrome on Android", LARGEST, 80.0, 0.0),
               Device(CHROME, LARGEST, 21.0, 0.0)]
    frame = strip_frame(devices)
    assert len(frame) == 3 and frame["spread"].abs().max() <= 0.5
    spec = strip_chart(frame, 21.0).to_dict()
    dots = spec["layer"][0]
    assert dots["mark"]["type"] == "circle"
    assert dots["encoding"]["y"]["field"] == "family" and dots["encoding"]["color"]["field"] == "family"
    assert spec["layer"][1]["mark"]["type"] == "rule"


# ------------------------------------------------------------------------------------------------ the Join page's answers to bad links
def _join(**query):
    from tests.conftest import app_page

    at = app_page("join", timeout=60, **query)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("query, words", [
    ({}, "no valid room code"),
    ({"room": "<script>alert(1)</script>"}, "no valid room code"),
    ({"room": "abc"}, "no valid room code"),
    ({"room": "ZZZZZZ"}, "not open"),
], ids=["no room", "markup", "malformed", "unknown"])
def test_the_join_page_answers_a_bad_link_with_one_line(query, words):
    at = _join(**query)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and words in errors[0], errors
    _assert_one_plain_line(errors[0])
    assert not at.button


def test_the_join_page_flags_a_links_bad_subnet_and_still_offers_to_measure():
    from app.room import rooms

    code = rooms().open(LARGEST, "note10")
    at = _join(room=code, cfg="r224-<b>", hw="note10")
    assert not at.error
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and "subnet" in warnings[0], warnings
    _assert_one_plain_line(warnings[0])
    assert any("in this server's memory only" in m.value for m in at.markdown)
    assert [b.label for b in at.button] == ["Measure my device"]


# ------------------------------------------------------------------------------------------------ in the browser
from tests.test_browser import ARGS, CHROMIUM, _goto, server  # noqa: E402,F401 - the browser tests' server


@pytest.fixture(scope="module")
def playwright_browser():
    """(playwright, chromium): one browser for the presenter and the three audience contexts."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield p, b
        b.close()


_STRIP = ".st-key-present_stage [data-testid='stVegaLiteChart']"
_DOTS = f"() => document.querySelectorAll(\"{_STRIP} svg g.mark-symbol.role-mark path\").length"
_DEVICES_MEASURED = """(n) => {
  const tile = [...document.querySelectorAll('[data-testid="stMetric"]')].find(e => e.innerText.includes('Devices measured'));
  return !!tile && tile.querySelector('[data-testid="stMetricValue"]').innerText.trim() === n;
}"""


@pytest.mark.browser
def test_three_audience_browsers_join_by_the_qr_code_and_fill_the_presenters_strip(server, playwright_browser, tmp_path):
    p, browser = playwright_browser
    zbarimg = _zbarimg()
    cfg = SubnetConfig.smallest(160)  # small and quick to time in three browsers at once (and not the smallest:
    # a search for the median device then has subnets to choose from)
    presenter = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    _goto(presenter, f"{server}/present?cfg={cfg.to_compact()}&hw=note10")
    qr = presenter.locator(".st-key-present_qr img")
    qr.wait_for(timeout=60_000)
    url = presenter.locator(".st-key-present_url code").inner_text().strip()
    code = re.search(r"room=([A-Z2-9]{6})", url).group(1)
    assert url.startswith(f"{server}/join?") and f"cfg={cfg.to_compact()}" in url and "hw=note10" in url, url
    qr.screenshot(path=str(tmp_path / "qr.png"))
    decoded = subprocess.run([zbarimg, "--raw", "-q", str(tmp_path / "qr.png")], capture_output=True, text=True, timeout=30)
    assert decoded.stdout.strip() == url, decoded.stderr

    contexts = [browser.new_context(), browser.new_context(), browser.new_context(**p.devices["Pixel 7"])]
    audience = []
    for ctx in contexts:  # every device opens the URL the QR code carries and opts in
        page = ctx.new_page()
        _goto(page, url)
        assert page.get_by_text("in this server's memory only").count() == 1
        page.get_by_role("button", name="Measure my device").click()
        audience.append(page)
    for page in audience:
        page.get_by_text(re.compile(r"Sent to the room")).wait_for(timeout=90_000)
        ms = float(re.search(r"([\d.]+) ms", page.locator('[data-testid="stMetricValue"]').first.inner_text()).group(1))
        assert 0 < ms < 10_000 and math.isfinite(ms)
    assert "Chrome on Android" in audience[2].locator('[data-testid="stMetricLabel"]').first.inner_text()

    presenter.wait_for_function(_DEVICES_MEASURED, arg="3", timeout=30_000)
    presenter.wait_for_function(f"() => ({_DOTS})() === 3", timeout=30_000)  # one dot per device on the strip
    strip = presenter.locator(_STRIP)
    families = strip.evaluate("(el) => el.textContent")
    assert "Chrome on Android" in families and CHROME in families, families
    presenter.get_by_text("Specialised for the median device").wait_for(timeout=30_000)
    found = presenter.get_by_text(re.compile(r"top-1 at [\d.]+ ms on the median device")).inner_text()
    assert re.match(r"r\d{3}-d\d{5}-k[357x]{20}-e[346x]{20} — predicted", found), found
    assert code in presenter.locator(".st-key-present_stage").inner_text()
    for page in (presenter, *audience):
        assert page.locator('[data-testid="stException"]').count() == 0
    for ctx in (presenter.context, *contexts):
        ctx.close()
