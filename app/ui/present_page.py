"""Present: presenter mode for a talk. The current subnet in large type, a room the audience joins by QR code, and —
live — the latency every joined browser measured for the presenter's subnet, their median, and the subnet
specialised for the median device (docs/presenter.md)."""

from __future__ import annotations

import io
import ipaddress
import math
import re
import socket
import threading
from functools import lru_cache
from urllib.parse import urlencode, urlsplit

import altair as alt
import pandas as pd
import streamlit as st

from app import display
from app.predictors import device
from app.predictors.median_device import median_device_model, reference_model
from app.room import RoomError, RoomView, UnknownRoom, rooms
from app.space import SubnetConfig
from app.ui import metrics, resources, state

LIVE_SECONDS = 2.0  # how often the presenter's screen reads the room
QR_PIXELS = 440  # the QR code's size on the page (a projector's back row still scans it)
SEARCH_GENERATIONS = 100
SPECIALISED_CACHE = 64
FAMILY_COLOURS = ("#0B3C8C", "#C0392B", "#1E7B34", "#7D3C98", "#B9770E", "#117A8B", "#4D4D4D", "#A93226")

STYLE = """<style>
.st-key-present_stage h1 { font-size: 3rem; line-height: 1.15; color: #000; }
.st-key-present_stage h3 { font-size: 1.9rem; color: #000; }
.st-key-present_stage p, .st-key-present_stage li { font-size: 1.3rem; color: #000; }
.st-key-present_stage [data-testid="stMetricValue"] p { font-size: 3.2rem; font-weight: 700; line-height: 1.1; color: #000; }
.st-key-present_stage [data-testid="stMetricLabel"] p { font-size: 1.15rem; font-weight: 600; color: #000; }
.st-key-present_stage [data-testid="stCaptionContainer"] p { font-size: 1.05rem; color: #333; }
.st-key-present_stage code { font-size: 1.15rem; color: #000; background: #EEF1F4; word-break: break-all; }
.st-key-present_qr img { image-rendering: pixelated; border: 2px solid #000; }
</style>"""

_NETLOC = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$")


# ----------------------------------------------------------------------------------------------- the join URL
def _base_path() -> str:
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def app_origin() -> str:
    """``scheme://host:port`` as the presenter's browser reached this app (``st.context.url``, else the Host header),
    so a server on ``--server.address 0.0.0.0`` gives an address the audience's phones can open."""
    url = getattr(st.context, "url", None)
    scheme, netloc = "", ""
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        scheme, netloc = parts.scheme, parts.netloc
    if not netloc:
        netloc = st.context.headers.get("Host") or ""
    if scheme not in ("http", "https"):
        scheme = "https" if st.get_option("server.sslCertFile") else "http"
    if not _NETLOC.match(netloc):
        netloc = f"localhost:{st.get_option('server.port')}"
    return f"{scheme}://{netloc}"


def join_url(origin: str, code: str, cfg: SubnetConfig, hardware: str) -> str:
    """The URL the QR code carries: the Join page of room ``code`` with the presenter's current view."""
    return f"{origin}{_base_path()}/join?" + urlencode({"room": code, "cfg": cfg.to_compact(), "hw": hardware})


def is_loopback(origin: str) -> bool:
    host = urlsplit(origin).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lan_address() -> str | None:
    """This machine's address on its local network (a UDP socket's own address; no packet is sent), if any."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if ipaddress.ip_address(address).is_loopback else address


def qr_png(text: str, pixels: int = QR_PIXELS) -> tuple[bytes, int]:
    """A QR code of ``text`` as PNG (black on white, 4-module quiet zone) about ``pixels`` wide; (bytes, width)."""
    import segno

    qr = segno.make(text, error="m")
    modules = qr.symbol_size(scale=1, border=4)[0]
    scale = max(3, pixels // modules)
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=4, dark="#000000", light="#FFFFFF")
    return buf.getvalue(), modules * scale


# ----------------------------------------------------------------------------------------------- the room
def _room(cfg: SubnetConfig, hardware: str) -> str:
    """This session's room (opened on first use, or again if it was closed), now showing ``cfg`` on ``hardware``."""
    store = rooms()
    code = st.session_state.get("_present_room")
    if code:
        try:
            store.present(code, cfg.to_compact(), hardware)
            return code
        except UnknownRoom:
            pass
    code = store.open(cfg.to_compact(), hardware)
    st.session_state["_present_room"] = code
    return code


# ----------------------------------------------------------------------------------------------- the median device
_search_lock = threading.Lock()


@lru_cache(maxsize=SPECIALISED_CACHE)
def _search(model: device.DeviceLatencyModel, budget_ms: float, sha256: str, width_mult: float, num_classes: int,
            accuracy: str):
    """The most accurate subnet within ``budget_ms`` on ``model``'s device (registered as a hardware target); the
    :class:`~app.search.SearchResult`, or the reason there is none (one line). Cached per (model, budget)."""
    from app.search import SearchSettings, search

    target = device.DEVICES.add(model)
    card = _Card(sha256, width_mult, num_classes)
    try:
        return search(target.name, {"latency": budget_ms}, accuracy, SearchSettings(generations=SEARCH_GENERATIONS, seed=0),
                      supernet_card=card)
    except ValueError as exc:
        if "infeasible" not in str(exc):
            return f"the search could not run ({str(exc).splitlines()[0][:160]})"
        from app.predictors.encoding import encode

        floor = float(model.batch(encode([SubnetConfig.smallest()]))[0])
        return (f"too few subnets run within {budget_ms:g} ms there (the smallest needs {floor:.1f} ms): "
                "raise the budget")


class _Card:
    """The three fields of a supernet card a search reads (the cached search takes them as plain values)."""

    def __init__(self, sha256: str, width_mult: float, num_classes: int) -> None:
        self.sha256, self.width_mult, self.num_classes = sha256, width_mult, num_classes


def _accuracy_kind(card) -> str:
    from app.predictors.accuracy import supernet_predictor

    return "supernet" if card.sha256 and supernet_predictor(card.sha256) is not None else "imagenet"


def specialised_for_median(cfg: SubnetConfig, median_ms: float, budget_ms: float | None, card):
    """(median device model, budget used, search result or reason) for a room whose median device measured
    ``median_ms`` on ``cfg``; the budget defaults to ``cfg``'s latency on the median device."""
    model = median_device_model(reference_model().model, cfg, median_ms)
    from app.predictors.encoding import encode

    on_median = float(model.batch(encode([cfg]))[0])
    # to 0.1 ms (one cached search per shown budget), rounded up so that the default admits the subnet on screen
    budget = math.ceil((budget_ms if budget_ms else on_median) * 10 - 1e-6) / 10
    with _search_lock:  # one search at a time; a repeat is a cache hit
        found = _search(model, budget, card.sha256 or "", card.width_mult, card.num_classes, _accuracy_kind(card))
    return model, budget, found


# ----------------------------------------------------------------------------------------------- the strip
def strip_frame(devices) -> pd.DataFrame:
    return pd.DataFrame({
        "device": [f"device {i + 1}" for i in range(len(devices))],
        "family": [d.family for d in devices],
        "latency_ms": [round(d.latency_ms, 1) for d in devices],
        # a fixed spread inside each family's row, so devices of one family with close latencies stay apart
        "spread": [((i * 0.618034) % 1.0) - 0.5 for i in range(len(devices))],
    })


def strip_chart(frame: pd.DataFrame, median_ms: float | None) -> alt.LayerChart:
    """One dot per device: its latency for the presenter's subnet, a row and a colour per browser/OS family; a dashed
    line at the median."""
    families = sorted(frame["family"].unique())
    lo, hi = float(frame["latency_ms"].min()), float(frame["latency_ms"].max())
    pad = max(0.08 * hi, 0.5)  # room around the dots, also when every device measured the same
    dots = alt.Chart(frame).mark_circle(size=320, opacity=0.9, stroke="#000000", strokeWidth=1.2).encode(
        x=alt.X("latency_ms:Q", title="latency of the presenter's subnet in each browser (ms)",
                scale=alt.Scale(domain=[round(max(lo - pad, 0.0), 2), round(hi + pad, 2)], zero=False, nice=True),
                axis=alt.Axis(labelFontSize=16, titleFontSize=16, tickCount=6, labelColor="#000", titleColor="#000")),
        y=alt.Y("family:N", title=None, sort=families,
                axis=alt.Axis(labelFontSize=18, labelLimit=320, labelColor="#000", labelFontWeight="bold")),
        yOffset=alt.YOffset("spread:Q", scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color("family:N", legend=None, scale=alt.Scale(domain=families, range=list(FAMILY_COLOURS))),
        tooltip=[alt.Tooltip("device:N"), alt.Tooltip("family:N", title="browser / OS"),
                 alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".1f")],
    )
    layers = [dots]
    if median_ms is not None:
        rule = alt.Chart(pd.DataFrame({"median": [median_ms]})).mark_rule(color="#000000", strokeDash=[8, 5], size=2)
        layers.append(rule.encode(x="median:Q", tooltip=[alt.Tooltip("median:Q", title="median (ms)", format=".1f")]))
    return alt.layer(*layers).properties(height=max(200, 90 * len(families)))


# ----------------------------------------------------------------------------------------------- the page
def render() -> None:
    net = resources.supernet()
    card = net.card
    targets = metrics.targets()
    names = [t.name for t in targets]
    labels = {t.name: t.label for t in targets}
    cfg = state.config()
    hw = state.hardware(names)
    st.html(STYLE)
    try:
        code = _room(cfg, hw)
    except RoomError as exc:  # the app's own configs and target names pass; a hand-made table name might not
        st.error(str(exc))
        return
    origin = app_origin()
    url = join_url(origin, code, cfg, hw)

    with st.container(key="present_stage"):
        left, right = st.columns([5, 3], gap="large")
        with left:
            st.title("One network, specialised for every device in this room")
            st.markdown(f"The subnet on screen: `{cfg.to_compact()}`, cut from one Once-for-All supernet without "
                        f"retraining. Predicted on **{labels.get(hw, hw)}**:")
            tiles, note = display.metric_tiles(cfg, hw, card)
            by_title = {t.title: t for t in tiles}
            shown = [t for t in tiles if t.title.startswith("Accuracy")][:1] + [by_title[k] for k in ("Latency", "MACs")
                                                                               if k in by_title]
            for col, tile in zip(st.columns(len(shown)), shown):
                col.metric(tile.title.split(" (")[0], tile.text, help=f"{tile.title}: {tile.help}")
            if note:
                st.caption(f"Latency: {note}.")
            st.caption("Change the subnet or the hardware on Explore or Specialise and come back: the room follows.")
            budget = st.number_input("Latency budget on the median device (ms)", min_value=0.1, max_value=600_000.0,
                                     value=None, step=1.0, key="present_budget",
                                     placeholder="empty: the latency of the subnet on screen there",
                                     help="The search below finds the most accurate subnet within this latency on the "
                                          "room's median device.")
        with right:
            st.markdown(f"### Join with your phone — room {code}")
            png, width = qr_png(url)
            with st.container(key="present_qr"):
                st.image(png, width=width, alt=f"QR code of the join address: {url}")
            with st.container(key="present_url"):
                st.code(url, language=None, wrap_lines=True)
            if is_loopback(origin):
                lan = lan_address()
                port = urlsplit(origin).port or st.get_option("server.port")  # behind haproxy: the proxy's port
                where = f"http://{lan}:{port}{_base_path()}/present" if lan else "this machine's network address"
                st.warning(f"This address is this computer's own: phones cannot open it. Serve with `--server.address "
                           f"0.0.0.0` and open this page at {where}.")
        _live(code, cfg, budget)


@st.fragment(run_every=LIVE_SECONDS)
def _live(code: str, cfg: SubnetConfig, budget: float | None) -> None:
    """The room, read every :data:`LIVE_SECONDS`: the strip of devices, the count, the median and the subnet
    specialised for the median device."""
    try:
        view: RoomView = rooms().view(code)
    except UnknownRoom:
        st.rerun()  # the room was closed (idle, or dropped for newer rooms): the page opens a new one
        return
    except RoomError as exc:  # the shared store (replicas) did not answer: say so, try again at the next tick
        st.warning(str(exc))
        return
    measured = view.measured(cfg.to_compact())
    median = view.median_ms(cfg.to_compact())
    busy = len(view.devices) - len(measured)
    c1, c2, c3 = st.columns(3)
    c1.metric("Devices measured", f"{len(measured)}")
    c2.metric("Median latency", "—" if median is None else f"{median:.1f} ms")
    c3.metric("Browser / OS families", f"{len({d.family for d in measured})}")
    if busy:
        st.caption(f"{busy} more device{'s are' if busy > 1 else ' is'} measuring the subnet now on screen.")
    if not measured:
        st.info("Waiting for the room: scan the QR code and tap **Measure my device**.")
        return
    st.altair_chart(strip_chart(strip_frame(measured), median), width="stretch", key="present_strip")
    card = resources.supernet().card
    try:
        model, used, found = specialised_for_median(cfg, median, budget, card)
    except ValueError as exc:
        st.warning(f"No median-device model: {exc}.")
        return
    reference = reference_model()
    if isinstance(found, str):
        st.warning(f"No subnet for the median device within {used:g} ms: {found}")
        return
    from app.predictors.encoding import encode

    from app.predictors import predict_batch
    from app.search import ACCURACIES

    yours_ms = float(model.batch(encode([cfg]))[0])
    kind = _accuracy_kind(card)
    predicted = predict_batch([cfg], "note10", card.sha256 or None, card.width_mult, card.num_classes)
    yours_acc = float(predicted[ACCURACIES[kind]][0])
    st.markdown(f"### Specialised for the median device, within {used:g} ms")
    st.markdown(f"`{found.config.to_compact()}` — predicted **{found.accuracy:.1f}%** top-1 at "
                f"**{found.metrics['latency_ms']:.1f} ms** on the median device; the subnet on screen: "
                f"{yours_acc:.1f}% at {yours_ms:.1f} ms there.")
    st.caption(f"Median-device model: {reference.source} by {median:.1f} ms measured ÷ its prediction for the subnet "
               f"on screen; search: {SEARCH_GENERATIONS} generations, {found.seconds:.2f} s.")
    if st.button("Put this subnet on screen", key="present_take", icon=":material/cast:"):
        state.set_config(found.config)
        st.rerun()
