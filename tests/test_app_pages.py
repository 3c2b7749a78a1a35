"""AppTest tests of the Streamlit pages: every page renders, widgets and URL state work."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180


def page(name: str, **query) -> AppTest:
    from tests.conftest import app_page

    return app_page(name, TIMEOUT, **query)


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# ------------------------------------------------------------------ carbon
def test_carbon_page_scales_with_n_and_grid():
    at = page("carbon").run()
    no_exceptions(at)
    before = {m.label: m.value for m in at.metric}
    assert before["OFA (train once)"] == "1,240 GPU-h"
    assert before["ProxylessNAS"] == "20,000 GPU-h"  # 500 GPU-h per scenario at N = 40
    at.slider(key="n_slider").set_value(80).run()
    after = {m.label: m.value for m in at.metric}
    assert after["OFA (train once)"] == "1,240 GPU-h" and after["ProxylessNAS"] == "40,000 GPU-h"
    assert at.query_params["n"] == ["80"] or at.query_params["n"] == "80"


def test_carbon_page_reads_and_validates_url():
    at = page("carbon", n="10", grid="100").run()
    no_exceptions(at)
    assert {m.label: m.value for m in at.metric}["MnasNet"] == "400k GPU-h"
    at = page("carbon", n="-3", grid="lots").run()
    no_exceptions(at)
    assert any("Ignoring the link" in w.value for w in at.warning)
    assert {m.label: m.value for m in at.metric}["MnasNet"] == "1.6M GPU-h"


# ------------------------------------------------------------------ about
def test_about_page_shows_card():
    at = page("about").run()
    no_exceptions(at)
    assert at.title[0].value == "Model card"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Classes"] == "10"
    assert any("--supernet" in md.value for md in at.markdown)
    from app.weights import load_supernet

    if not load_supernet().card.placeholder:  # the bundled card's runs, plotted with their targets
        assert len(at.get("vega_lite_chart")) == 1 and any("Dashed: the targets" in c.value for c in at.caption)


# ------------------------------------------------------------------ classify
def test_classify_sample_gallery_gives_top5():
    at = page("classify", sample="golf_ball_1.jpg", cfg="r160-d22222-k" + "33xx" * 5 + "-e" + "33xx" * 5).run()
    no_exceptions(at)
    assert at.selectbox(key="sample_pick").value == "golf_ball_1.jpg"
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3  # current subnet and largest subnet, and the measured open-world chart
    assert any("Current subnet" in md.value and "at 160px" in md.value for md in at.markdown)
    assert at.success and "Looks like one of the 10 classes" in at.success[0].value and "golf ball" in at.success[0].value
    assert len(at.get("image")) == 10 + 1 + 3  # a thumbnail per class, the photo, the crop and two Grad-CAM overlays
    assert any("this machine, measured" in c.value for c in at.caption)


def test_classify_when_the_heavy_queue_is_full_says_busy_in_one_line_and_keeps_the_choice():
    """A room at its bound: the page refuses politely (no freeze, no traceback), keeps the chosen sample, and
    classifies it on the next run once the queue has room."""
    import threading

    from app.ui.work_queue import HEAVY

    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with HEAVY.slot():
            holding.set()
            release.wait(60)

    saved = HEAVY.max_waiting
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(60), "the holder never got the slot"  # (it may wait for an earlier test's job)
        HEAVY.max_waiting = 0  # nobody may wait: the one slot is taken
        at = page("classify", sample="golf_ball_1.jpg").run()
        no_exceptions(at)
        assert any("The server is busy" in w.value and "Try again" in w.value for w in at.warning), [w.value for w in at.warning]
        assert not at.success and not any("Current subnet" in md.value for md in at.markdown)
        assert at.selectbox(key="sample_pick").value == "golf_ball_1.jpg"
    finally:
        release.set()
        holder.join(10)
        HEAVY.max_waiting = saved
    at.run()
    no_exceptions(at)
    assert at.success and "golf ball" in at.success[0].value


def test_classify_bad_url_values_fall_back():
    at = page("classify", sample="../../etc/passwd", cfg="r999-nonsense").run()
    no_exceptions(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "subnet config was not understood" in warnings
    assert "Ignoring the link's sample" in warnings


def _png_bytes(mode="RGB", size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="img_source").set_value("Upload").run()
    at.file_uploader(key="upload").upload(name, data, "image/png").run()
    return at


def test_classify_upload_good_image():
    at = _upload(page("classify").run(), "grey.png", _png_bytes())
    no_exceptions(at)
    assert not at.error
    assert len(at.get("vega_lite_chart")) == 3  # the two top-5 bars and the measured open-world chart
    assert at.warning and "Not one of the 10 classes" in at.warning[0].value  # a plain grey square is none of them


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.png", b"", "empty"),
        ("text.jpg", b"this is not an image at all" * 10, "not an image the app can read"),
        ("trunc.png", _png_bytes(size=(300, 300))[:60], "damaged or incomplete"),
    ],
)
def test_classify_upload_bad_files_give_clear_errors(name, data, message):
    at = _upload(page("classify").run(), name, data)
    no_exceptions(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert all("Error" not in e.value and "0x" not in e.value for e in at.error)
    assert len(at.get("vega_lite_chart")) == 1  # only the measured open-world chart, no answer


# ------------------------------------------------------------------ explore
def _metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def test_explore_renders_metrics_with_sources():
    at = page("explore").run()
    no_exceptions(at)
    m = _metrics(at)
    assert {"Latency", "Energy", "MACs", "Params", "ImageNet top-1 (OFA)"} <= set(m)
    assert m["Latency"].endswith("ms")
    captions = " ".join(c.value for c in at.caption)
    assert "published" in captions and "Horowitz" in captions


def test_explore_slider_changes_config_metrics_and_url():
    at = page("explore").run()
    before = _metrics(at)
    at.select_slider(key="g_d").set_value(2).run()
    no_exceptions(at)
    assert at.query_params["cfg"][0].startswith("r224-d22222") if isinstance(at.query_params["cfg"], list) else at.query_params["cfg"].startswith("r224-d22222")
    assert _metrics(at)["MACs"] != before["MACs"]
    at.select_slider(key="g_r").set_value(160).run()
    assert "r160-" in str(at.query_params["cfg"])


def test_explore_url_state_hardware_and_presets():
    at = page("explore", cfg="r176-d23334-k" + "33xx" + "533x" * 3 + "5333" + "-e" + "33xx" + "434x" * 3 + "6643", hw="gpu-v100-b64").run()
    no_exceptions(at)
    assert at.selectbox(key="hw_pick").value == "gpu-v100-b64"
    at.selectbox(key="preset_pick").set_value("smallest").run()
    no_exceptions(at)
    assert "r128-d22222" in str(at.query_params["cfg"])
    at = page("explore", hw="toaster").run()
    assert any("Unknown hardware" in w.value for w in at.warning)


def test_explore_stage_and_block_modes():
    at = page("explore", mode="stage").run()
    no_exceptions(at)
    at.selectbox(key="s_k0").set_value(3).run()
    assert "-k3333" in str(at.query_params["cfg"])
    at = page("explore", mode="block").run()
    no_exceptions(at)
    at.selectbox(key="b_d4").set_value(2).run()
    assert "d44442" in str(at.query_params["cfg"])


# ------------------------------------------------------------------ specialise / compare
def test_specialise_runs_a_search():
    at = page("specialise", hw="note10").run()
    no_exceptions(at)
    at.slider(key="sp_gens").set_value(50).run()
    at.button(key="sp_go").click().run()
    no_exceptions(at)
    assert any("Found" in s.value for s in at.success)
    lat = float(_metrics(at)["Latency"].split()[0])
    assert lat <= 25.0
    assert not any("most optimistic" in c.value for c in at.caption)  # OFA's ImageNet predictor: no such caveat


def test_specialise_on_the_supernet_predictor_warns_that_searches_flatter_it():
    at = page("specialise", hw="note10").run()
    at.radio(key="sp_acc").set_value("supernet").run()
    at.slider(key="sp_gens").set_value(50).run()
    at.button(key="sp_go").click().run()
    no_exceptions(at)
    assert any("Found" in s.value for s in at.success)
    assert any("most optimistic" in c.value and "Measure accuracy" in c.value for c in at.caption)


def test_compare_pins_from_url():
    pins = ",".join(["r128-d22222-k" + "33xx" * 5 + "-e" + "33xx" * 5, "r224-d44444-k" + "7" * 20 + "-e" + "6" * 20])
    at = page("compare", pins=pins).run()
    no_exceptions(at)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 2
    # the bundled sample is one of the classes: each pinned subnet's answer in bold, no warning
    assert not at.warning and sum("**" in m.value for m in at.markdown) >= 2


def test_compare_flags_an_out_of_class_upload_once_for_all_pins():
    pins = ",".join(["r128-d22222-k" + "33xx" * 5 + "-e" + "33xx" * 5, "r224-d44444-k" + "7" * 20 + "-e" + "6" * 20])
    at = page("compare", pins=pins).run()
    at.file_uploader(key="compare_upload").upload("grey.png", _png_bytes(size=(300, 200)), "image/png").run()
    no_exceptions(at)
    assert len(at.warning) == 1 and "Not one of the 10 classes" in at.warning[0].value
    assert sum(":gray[closest:" in m.value for m in at.markdown) == 2  # both answers demoted
