"""Join: an audience member's page of a presenter's room (reached by the Present page's QR code,
``/join?room=…&cfg=…&hw=…``). Opt-in: the browser times the presenter's current subnet (a weightless probe, tens of
KB) with onnxruntime-web and the latency goes to the room; the page follows the presenter and measures again when the
subnet on screen changes."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app.predictors import device
from app.room import RoomError, check_code, check_config, check_hardware, new_device_id, rooms
from app.space import SubnetConfig
from app.ui import resources
from app.ui.browser_report import browser_family
from app.ui.browser_runtime import BrowserModel, run_in_browser, runtime_missing

FOLLOW_SECONDS = 3.0  # how often an audience page asks the room what the presenter shows
PROBE_CACHE = 8  # probe subnets kept on the server (one per subnet the presenters showed recently)

EXPLAIN = ("**What happens if you join:** your browser downloads the in-browser runtime (about 14 MB, once) and the "
           "subnet on the presenter's screen without its weights (tens of KB: the weights are generated in your "
           "browser), runs it 7 times and times the last 5. The room keeps two things about your device, in this "
           "server's memory only: that latency, and your browser and system family (e.g. *Chrome on Android*, never "
           "more of your browser's identity). Nothing is written to disk; it is gone when the server restarts. Your "
           "photos and camera are not used.")

STYLE = """<style>
.st-key-join_stage h1 { font-size: 2.4rem; color: #000; }
.st-key-join_stage p { font-size: 1.15rem; color: #000; }
.st-key-join_stage [data-testid="stMetricValue"] p { font-size: 3rem; font-weight: 700; line-height: 1.1; color: #000; }
.st-key-join_stage [data-testid="stMetricLabel"] p { font-size: 1.1rem; font-weight: 600; color: #000; }
.st-key-join_stage [data-testid="stCaptionContainer"] p { font-size: 1rem; color: #333; }
</style>"""


@st.cache_resource(show_spinner="Preparing the presenter's subnet…", max_entries=PROBE_CACHE)
def probe(supernet_sha256: str, config: str) -> BrowserModel:
    """The subnet ``config`` as a weightless ONNX probe (same work per forward pass, tens of KB): shared, read-only."""
    return BrowserModel.of(device.probe_model(resources.supernet(), SubnetConfig.parse(config)))


def _input(r: int) -> np.ndarray:
    return np.full((1, 3, r, r), 0.5, dtype=np.float32)


def render() -> None:
    st.html(STYLE)
    with st.container(key="join_stage"):
        st.title("Join the talk's room")
        try:
            code = check_code(st.query_params.get("room"))
        except RoomError:
            st.error("This link has no valid room code: scan the presenter's QR code again.")
            return
        try:
            view = rooms().view(code)
        except RoomError as exc:
            st.error(str(exc))
            return
        _check_link()
        if st.session_state.get("_join_room") != code:
            st.markdown(EXPLAIN)
            if st.button("Measure my device", type="primary", icon=":material/speed:", key="join_opt_in"):
                st.session_state["_join_room"] = code
                st.rerun()
            return
        missing = runtime_missing()
        if missing:
            st.info(missing)
            return
        device_id = st.session_state.setdefault("_join_device", new_device_id())
        _measure(code, view.config, device_id)
        _follow(code, view.config, device_id)
        with st.expander("What is measured and kept"):
            st.markdown(EXPLAIN)
        if st.button("Leave the room", key="join_leave", icon=":material/logout:"):
            try:
                rooms().leave(code, device_id)
            except RoomError:
                pass  # the room is gone already: nothing of this device is kept
            st.session_state.pop("_join_room", None)
            st.session_state.pop("_join_reported", None)
            st.rerun()


def _check_link() -> None:
    """The link's own subnet and hardware are only checked: the room says what the presenter shows now."""
    problems = []
    raw_cfg, raw_hw = st.query_params.get("cfg"), st.query_params.get("hw")
    if raw_cfg is not None:
        try:
            check_config(raw_cfg)
        except RoomError:
            problems.append("subnet")
    if raw_hw is not None:
        try:
            check_hardware(raw_hw)
        except RoomError:
            problems.append("hardware name")
    if problems:
        st.warning(f"This link's {' and '.join(problems)} was not understood; this page follows the presenter's "
                   "current subnet instead.")


def _measure(code: str, config: str, device_id: str) -> None:
    """Time ``config`` in this browser and send the latency to the room (once per measurement)."""
    net = resources.supernet()
    cfg = SubnetConfig.parse(config)
    got = run_in_browser(model=probe(net.card.sha256 or net.card.name, config), inputs=_input(cfg.r),
                         output_shape=(1, net.card.num_classes), key="join_measure")
    if got.pending:
        st.markdown(f"Measuring the presenter's subnet (`{config}`, {cfg.r} px) in your browser — keep this page open.")
        return
    if got.problem:
        st.error(got.problem)
        return
    ms = got.run.latency_ms
    family = browser_family(st.context.headers.get("User-Agent"))
    sent = (code, config, got.run.request_id, ms)
    if st.session_state.get("_join_reported") != sent:
        try:
            rooms().report(code, device_id, family, config, ms)
        except RoomError as exc:
            st.error(str(exc))
            return
        st.session_state["_join_reported"] = sent
    st.metric(f"Your device ({family})", f"{ms:.1f} ms", help=f"{got.run.source}; median of "
              f"{len(got.run.latencies_ms)} timed runs after warm-up.")
    st.caption(f"{got.run.source}. Sent to the room.")
    st.markdown(f"The presenter's subnet: `{config}` ({cfg.r} px).")


@st.fragment(run_every=FOLLOW_SECONDS)
def _follow(code: str, measuring: str, device_id: str) -> None:
    """Ask the room what the presenter shows; measure again when it changed. Also: where this device stands."""
    try:
        view = rooms().view(code)
    except RoomError:
        st.rerun()  # the page says the room is gone
        return
    if view.config != measuring:
        st.rerun()  # the presenter changed the subnet: measure the new one
        return
    here = view.measured()
    median = view.median_ms()
    if here and median is not None:
        st.caption(f"The room so far: {len(here)} device{'s' if len(here) != 1 else ''} measured this subnet, "
                   f"median {median:.1f} ms. This page follows the presenter.")
