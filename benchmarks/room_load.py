"""Room load: a presenter's audience, as protocol-level clients of Streamlit's own websocket, against one app server.

    python benchmarks/room_load.py [--sessions 50] [--seconds 120] [--format json] [--url http://127.0.0.1:8501]

Each client is what a browser tab is to the server, without the browser: it opens ``/_stcore/stream`` and speaks the
app's own Streamlit version's protobuf messages (``streamlit.proto``): a ``BackMsg`` with ``rerun_script`` (a
``ClientState``: query string, page script hash, widget states) goes up; ``ForwardMsg``s come down (``new_session``,
the page's ``delta``s, ``page_info_changed``, ``script_finished``). Widget ids come from the deltas (each widget's
``id``); a client finds the Explore page's sliders and hardware picker by their labels and sends widget states that
move them, exactly as the frontend does (``string_array_value`` for a select slider, ``string_value`` for a
selectbox or radio). A client costs a few ms of CPU per interaction, so 50 of them leave the cores to the server.

The room (seeded): ``--follow`` of the clients follow the presenter, whose config and hardware change every
``--presenter-every`` seconds (half of the room opens the presenter's link ``?cfg=…&hw=…``); the others explore.
Every ``--interval`` seconds a client moves one slider (towards the presenter's config, or anywhere) or changes the
hardware; with probability ``--upload-prob`` per step it instead goes to Classify, picks *Upload*, uploads a bundled
photo (``file_urls_request`` → HTTP PUT to ``/_stcore/upload_file/…`` with the XSRF token → a
``file_uploader_state_value``) and comes back to Explore, as a person would.

Latency of an interaction: from sending the message to the server's ``script_finished`` (the run, and any
``st.rerun`` it chains, finished) — server-side latency, as seen from loopback. Errors: a timeout (``--timeout``),
an exception or ``st.error`` element, a compile error, a closed connection, or a wrong page: after every Explore
interaction the client checks the "**Subnet** `…`" line against the config it moved to, the hardware picker, the
URL's ``cfg``/``hw``, and every metric tile against ``app.display.metric_tiles`` for that config (the page must say
exactly what the API predicts); after an upload, that the same photo and subnet give the same answer in every session.

Without ``--url`` the app is started on a free loopback port (``app.ui.serve.serving``) and stopped at the end. The
server's RSS is read after warm-up (``--ramp`` to open the sessions, then ``--warmup`` seconds of interactions, not
counted) and after the run, each time once the room has held still for ``--pause`` seconds (what the server keeps:
models, caches, sessions — app/allocator.py returns freed memory when quiet); under load it is read every 10 s and at
the two moments the room stops (``rss_busy_mb``), and its maximum is reported. The CPU used by the server, the
clients and everything else on the machine during the measured window is reported, so a busy machine shows.
``--browsers 3`` adds real chromium sessions (Playwright, Debian's chromium) moving sliders beside the clients, for
end-to-end samples (kind ``browser``; they cost CPU).

``--replicas N`` starts N replicas behind haproxy with rooms in Redis (``app.ui.replicas``) and runs the room through
the proxy (each client keeps its cookies: the sticky one pins it to a replica; RSS and CPU are the replicas' sums).
``--kill-replica-at S`` kills replica r1 S seconds into the window: the interaction each of its sessions had in flight
is reported as lost with it (not an error); the session reconnects through the proxy as Streamlit's frontend does
(kind ``reconnect``: like the frontend, which keeps trying while the tab shows "Connecting…", it tries up to 4 times,
0.5 / 1 / 2 s apart, and the retries are counted) and its page must come back showing what its URL says, tiles
checked — anything else, and any failure on the other replica, is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urljoin

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common`, also when imported by the tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `app`

from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402 - the app's own Streamlit version's protocol
from streamlit.proto.Common_pb2 import FileUploaderState, UploadedFileInfo  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402

from app.space import DEPTH_CHOICES, EXPAND_CHOICES, KERNEL_CHOICES, RESOLUTION_CHOICES, SubnetConfig  # noqa: E402

SLIDERS = {"d": "Depth (blocks per stage)", "e": "Width (expand ratio)", "ks": "Kernel size", "r": "Input resolution (px)"}
CHOICES = {"d": DEPTH_CHOICES, "e": EXPAND_CHOICES, "ks": KERNEL_CHOICES, "r": RESOLUTION_CHOICES}
HW_LABEL = "Hardware target"
SOURCE_LABEL = "Image source"
UPLOAD_LABEL = "An image (JPEG, PNG, WebP, GIF, BMP, TIFF; up to 20 MB)"
REPLICA_COOKIE = "ofa_replica"  # haproxy's sticky cookie (app/ui/replicas.py)
TARGET_KINDS = ("slider", "hardware")  # the target: p95 <= 500 ms for these
DONE = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class ProtocolError(Exception):
    """The server did something a browser would show as broken (closed, timed out, exception, wrong page)."""


# ----------------------------------------------------------------------------------------------- one run's page
@dataclass
class Page:
    """What one script run drew: its elements by delta path (the page a browser would show after it)."""

    elements: dict[tuple[int, ...], object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # exceptions, st.error, compile errors, page not found
    status: int | None = None
    seconds: float = 0.0
    messages: int = 0
    nbytes: int = 0

    def _ordered(self):
        return [self.elements[k] for k in sorted(self.elements)]

    def widget(self, label: str):
        """(kind, proto) of the widget with this label, or (None, None)."""
        for el in self._ordered():
            kind = el.WhichOneof("type")
            sub = getattr(el, kind)
            if getattr(sub, "label", None) == label and getattr(sub, "id", ""):
                return kind, sub
        return None, None

    def markdowns(self) -> list[str]:
        return [el.markdown.body for el in self._ordered() if el.WhichOneof("type") == "markdown"]

    def metrics(self) -> dict[str, str]:
        return {el.metric.label: el.metric.body for el in self._ordered() if el.WhichOneof("type") == "metric"}


# ----------------------------------------------------------------------------------------------- one browser tab's protocol
class Client:
    """One session over ``/_stcore/stream``: what the Streamlit frontend sends and reads, nothing drawn."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.ws = None
        self.xsrf: str | None = None
        self.session_id = ""
        self.query_string = ""
        self.page_hash = ""
        self.pages: dict[str, str] = {}  # page title -> page script hash (from the `navigation` message)
        self.page = Page()
        self.jar = CookieJar()  # the tab's cookies: Streamlit's XSRF token, a proxy's sticky-session cookie
        self.lost = False  # the connection closed under us (a replica died)
        self.trail: list[str] = []  # the last runs: query string sent -> query string after (for error reports)

    @property
    def replica(self) -> str:
        """The replica a proxy's sticky cookie names ("" straight to one server)."""
        return next((c.value for c in self.jar if c.name == REPLICA_COOKIE), "")

    def _cookies(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    async def open(self, query_string: str = "") -> Page:
        from websockets.asyncio.client import connect

        try:
            self.xsrf = await asyncio.to_thread(self._xsrf_cookie)
            headers = {"Cookie": self._cookies()} if self.xsrf else None
            ws_url = "ws" + self.url[len("http"):] + "/_stcore/stream"
            # the browser's handshake: subprotocol "streamlit", then the XSRF token; permessage-deflate like a browser
            self.ws = await asyncio.wait_for(connect(ws_url, subprotocols=["streamlit", self.xsrf or ""],
                                                     additional_headers=headers, max_size=None,
                                                     open_timeout=self.timeout), self.timeout)
        except Exception as exc:  # noqa: BLE001 - refused, timed out, HTTP error: the tab does not open
            raise ProtocolError(f"connect: {type(exc).__name__}: {str(exc)[:120]}") from None
        self.query_string = query_string
        self.lost = False
        return await self.rerun()

    async def reopen(self) -> Page:
        """What the frontend does when its connection drops: connect again (cookies kept: a proxy sends a dead
        replica's tab to a live one) and run the page from its URL. The new server knows nothing of this tab."""
        await self.close()
        self.ws, self.page_hash = None, ""
        return await self.open(self.query_string)

    def _xsrf_cookie(self) -> str | None:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        with opener.open(self.url + "/_stcore/health", timeout=self.timeout) as r:
            r.read()
        return next((c.value for c in self.jar if c.name == "_streamlit_xsrf"), None)

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    async def rerun(self, widgets: tuple[WidgetState, ...] = (), page_hash: str | None = None) -> Page:
        """Send ``rerun_script`` (the widgets that changed; the server keeps the others) and read until the run
        chain ends. Returns the page; raises ProtocolError on a timeout or a closed connection."""
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query_string
        cs.page_script_hash = self.page_hash if page_hash is None else page_hash
        for w in widgets:
            cs.widget_states.widgets.append(w)
        cs.context_info.timezone = "UTC"
        cs.context_info.locale = "en-US"
        cs.context_info.url = self.url + "/"
        t = time.perf_counter()
        sent_cfg = parse_qs(self.query_string).get("cfg", ["-"])[0]
        self.trail = (self.trail + [f"{sent_cfg}+{len(widgets)}w->?"])[-4:]
        await self._send(msg)
        page = Page()
        deadline = t + self.timeout  # the whole run chain, not each message
        while page.status not in DONE:
            fm = await self._recv(deadline)
            page.messages += 1
            self._apply(fm, page)
        page.seconds = time.perf_counter() - t
        self.trail[-1] = self.trail[-1][:-1] + parse_qs(self.query_string).get("cfg", ["-"])[0]
        self.page = page
        return page

    async def _send(self, msg: BackMsg) -> None:
        try:
            await self.ws.send(msg.SerializeToString())
        except Exception as exc:  # noqa: BLE001
            self.lost = True
            raise ProtocolError(f"connection: send failed: {type(exc).__name__}: {exc}") from None

    async def _recv(self, deadline: float | None = None) -> ForwardMsg:
        left = self.timeout if deadline is None else deadline - time.perf_counter()
        try:
            if left <= 0:
                raise asyncio.TimeoutError
            data = await asyncio.wait_for(self.ws.recv(), left)
        except asyncio.TimeoutError:
            raise ProtocolError(f"timeout: no script_finished within {self.timeout:.0f} s") from None
        except Exception as exc:  # noqa: BLE001 - connection closed, ...
            self.lost = True
            raise ProtocolError(f"connection: {type(exc).__name__}: {str(exc)[:120]}") from None
        fm = ForwardMsg()
        fm.ParseFromString(data)
        return fm

    def _apply(self, fm: ForwardMsg, page: Page) -> None:
        kind = fm.WhichOneof("type")
        if kind == "new_session":  # a run starts (also each run of an st.rerun chain): the page is redrawn
            page.elements.clear()
            self.page_hash = fm.new_session.page_script_hash
            if fm.new_session.initialize.session_id:
                self.session_id = fm.new_session.initialize.session_id
        elif kind == "delta":
            d = fm.delta
            if d.WhichOneof("type") == "new_element":
                el = d.new_element
                path = tuple(fm.metadata.delta_path)
                page.elements[path] = el
                ek = el.WhichOneof("type")
                if ek == "exception":
                    page.problems.append(f"exception on the page: {el.exception.type}: {el.exception.message[:160]}")
                elif ek == "alert" and el.alert.format == el.alert.ERROR:
                    page.problems.append(f"st.error on the page: {el.alert.body[:160]}")
        elif kind == "page_info_changed":
            self.query_string = fm.page_info_changed.query_string
        elif kind == "navigation":
            self.pages = {p.page_name: p.page_script_hash for p in fm.navigation.app_pages}
        elif kind == "page_not_found":
            page.problems.append(f"page not found: {fm.page_not_found.page_name!r}")
        elif kind == "session_event":
            ev = fm.session_event
            if ev.WhichOneof("type") == "script_compilation_exception":
                page.problems.append(f"compile error: {ev.script_compilation_exception.message[:160]}")
        elif kind == "script_finished":
            page.status = fm.script_finished
            if fm.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                page.problems.append("script finished with a compile error")

    async def upload(self, widget_id: str, name: str, data: bytes, content_type: str = "image/jpeg") -> WidgetState:
        """The frontend's upload: ask for an upload URL over the websocket, PUT the file over HTTP (XSRF token in
        the header and the cookie), then the widget state that names it (to send with a rerun)."""
        req = BackMsg()
        req.file_urls_request.request_id = uuid.uuid4().hex
        req.file_urls_request.file_names.append(name)
        req.file_urls_request.session_id = self.session_id
        await self._send(req)
        deadline = time.perf_counter() + self.timeout
        while True:
            fm = await self._recv(deadline)
            if fm.WhichOneof("type") == "file_urls_response" and fm.file_urls_response.response_id == req.file_urls_request.request_id:
                break
            self._apply(fm, self.page)
        if fm.file_urls_response.error_msg or not fm.file_urls_response.file_urls:
            raise ProtocolError(f"upload URL refused: {fm.file_urls_response.error_msg}")
        urls = fm.file_urls_response.file_urls[0]
        await asyncio.to_thread(self._put, urljoin(self.url + "/", urls.upload_url.lstrip("/")), name, data, content_type)
        state = WidgetState(id=widget_id)
        state.file_uploader_state_value.CopyFrom(FileUploaderState(uploaded_file_info=[
            UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id, file_urls=urls)]))
        return state

    def _put(self, url: str, name: str, data: bytes, content_type: str) -> None:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if self.xsrf:
            headers.update({"X-Xsrftoken": self.xsrf, "Cookie": self._cookies()})
        req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                if r.status not in (200, 204):
                    raise ProtocolError(f"upload PUT: HTTP {r.status}")
        except OSError as exc:
            raise ProtocolError(f"upload PUT: {exc}") from None


def select_slider_state(widget_id: str, value: object) -> WidgetState:
    w = WidgetState(id=widget_id)
    w.string_array_value.data.append(str(value))
    return w


def string_state(widget_id: str, value: str) -> WidgetState:
    return WidgetState(id=widget_id, string_value=value)


# ----------------------------------------------------------------------------------------------- what the page must say
class Oracle:
    """What the Explore page must show for a config and hardware: ``app.display.metric_tiles`` (the functions the page
    itself calls, on the bundled supernet's card), and the same answer for the same photo and subnet in every session.
    With ``--url`` serving another supernet the tiles are checked for consistency across sessions instead."""

    def __init__(self) -> None:
        from app import predictors as P
        from app.card import SupernetCard
        from app.weights import default_weights_path

        stem = default_weights_path()
        self.card = SupernetCard.from_dict(json.loads(stem.with_suffix(".json").read_text("utf-8")))
        targets = P.hardware_targets()
        self.label_to_name = {f"{t.label} · {t.kind}": t.name for t in targets}
        self.name_to_label = {v: k for k, v in self.label_to_name.items()}
        self.exact = True  # False once the server turns out to serve another supernet
        self._tiles: dict[tuple[str, str], dict[str, str]] = {}
        self._seen: dict[tuple, str] = {}

    def tiles(self, compact: str, hw_label: str) -> dict[str, str] | None:
        key = (compact, hw_label)
        if key not in self._tiles:
            if not self.exact or hw_label not in self.label_to_name:
                return None
            from app.display import metric_tiles

            tiles, _ = metric_tiles(SubnetConfig.from_compact(compact), self.label_to_name[hw_label], self.card, "fp32")
            self._tiles[key] = {t.title: t.text for t in tiles}
        return self._tiles[key]

    def consistent(self, key: tuple, value: str) -> str | None:
        """None if ``value`` is what every earlier session saw for ``key``; else what they saw."""
        before = self._seen.setdefault(key, value)
        return None if before == value else before


@dataclass
class View:
    """The state a client believes its Explore page is in: the config and the hardware picker's option label.

    Moves are the Quick editor's: a global slider sets its dimension for every block (``app.ui.controls``); the
    config normalises blocks that depth skips to the smallest choices (``SubnetConfig``), so lowering depth and raising
    it again gives a mixed config, whose sliders show the most common active value."""

    cfg: SubnetConfig = field(default_factory=SubnetConfig.largest)
    hw: str = ""

    def shown(self, dim: str) -> int:
        c = self.cfg
        if dim == "r":
            return c.r
        if dim == "d":
            return _most_common(c.d)
        return _most_common([v for v, a in zip(getattr(c, dim), c.active_mask()) if a])

    def move(self, dim: str, value: int) -> None:
        c = self.cfg
        self.cfg = c.replace(r=value) if dim == "r" else c.replace(**{dim: (value,) * len(getattr(c, dim))})


def _most_common(values) -> int:
    from collections import Counter

    return Counter(values).most_common(1)[0][0]


def check_explore(page: Page, client: Client, view: View, oracle: Oracle) -> list[str]:
    """Everything wrong with an Explore page that should show ``view`` (empty: correct)."""
    bad = list(page.problems)
    compact = view.cfg.to_compact()
    lines = [m for m in page.markdowns() if m.startswith("**Subnet** ")]
    if lines != [f"**Subnet** `{compact}`"]:
        bad.append(f"subnet line {lines[:1]} instead of {compact}")
    kind, hw = page.widget(HW_LABEL)
    if hw is None or hw.raw_value != view.hw:
        bad.append(f"hardware picker shows {getattr(hw, 'raw_value', None)!r} instead of {view.hw!r}")
    for dim, label in SLIDERS.items():
        _, s = page.widget(label)
        if s is None or list(s.raw_value) != [str(view.shown(dim))]:
            bad.append(f"slider {label!r} shows {list(getattr(s, 'raw_value', []))} instead of {view.shown(dim)}")
    q = parse_qs(client.query_string)
    if q.get("cfg") != [compact]:
        bad.append(f"URL cfg {q.get('cfg')} instead of {compact}")
    name = oracle.label_to_name.get(view.hw)
    if name and q.get("hw") != [name]:
        bad.append(f"URL hw {q.get('hw')} instead of {name}")
    shown = page.metrics()
    want = oracle.tiles(compact, view.hw)
    if want is not None:
        if shown != want:
            diff = {k: (shown.get(k), v) for k, v in want.items() if shown.get(k) != v}
            bad.append(f"tiles for {compact} on {name}: shown vs predicted {diff or shown}")
    else:
        before = oracle.consistent(("tiles", compact, view.hw), json.dumps(shown, sort_keys=True))
        if before is not None:
            bad.append(f"tiles for {compact} on {view.hw} differ between sessions: {shown} vs {before}")
    return bad


# ----------------------------------------------------------------------------------------------- the room
RECONNECT_TRIES = 4  # a dropped tab tries again, as the frontend does while it shows "Connecting…" (0.5, 1, 2 s apart)


@dataclass
class Record:
    kind: str
    seconds: float
    ok: bool
    t: float  # start, seconds since the room's t0
    error: str = ""
    replica: str = ""  # the replica the session was on (behind a proxy)


@dataclass
class Room:
    url: str
    sessions: int = 50
    seconds: float = 120.0
    warmup: float = 30.0  # the bounded caches (8 shared subnets, 64 answers, 4 resolutions) fill in ~30 s of a room
    ramp: float = 10.0
    pause: float = 10.0  # the room holds still after the warm-up (and the run) before RSS is read
    interval: float = 2.0
    follow: float = 0.7
    upload_prob: float = 0.02
    presenter_every: float = 20.0
    timeout: float = 30.0
    seed: int = 0
    kill_at: float | None = None  # seconds into the measured window: kill a replica (``kill`` returns its name)
    kill: Callable[[], str] | None = None
    records: list[Record] = field(default_factory=list)
    opens: list[Record] = field(default_factory=list)
    oracle: Oracle = field(default_factory=Oracle)
    photos: list[Path] = field(default_factory=list)
    t0: float = 0.0
    stats: dict = field(default_factory=lambda: {"latency_changed": 0, "followers": 0, "link_opens": 0})
    killed: str = ""  # the replica killed, when
    killed_t: float | None = None
    reconnect_retries: int = 0  # failed reconnect attempts that were tried again

    def __post_init__(self) -> None:
        from app.paths import ASSETS

        self.photos = sorted((ASSETS / "samples").glob("*.jpg"))
        rng = random.Random(self.seed)
        # the presenter's timeline: one global slider (or the hardware) changes every `presenter_every` seconds;
        # the presenter's configs are uniform (depth set first, so that followers can reach them exactly)
        self.timeline = [View(hw=self.oracle.name_to_label.get("note10", ""))]
        total = self.window_start + self.seconds + 60
        while len(self.timeline) * self.presenter_every < total:
            v = View(self.timeline[-1].cfg, self.timeline[-1].hw)
            if len(self.oracle.label_to_name) > 1 and rng.random() < 0.2:
                v.hw = rng.choice([lb for lb in self.oracle.label_to_name if lb != v.hw])
            else:
                dim = rng.choice(list(SLIDERS))
                v.move(dim, rng.choice([c for c in CHOICES[dim] if c != v.shown(dim)]))
                v.cfg = SubnetConfig.uniform(v.shown("ks"), v.shown("e"), v.shown("d"), v.cfg.r)
            self.timeline.append(v)

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def presenter(self) -> View:
        return self.timeline[min(len(self.timeline) - 1, int(self.now() // self.presenter_every))]

    @property
    def window_start(self) -> float:
        """Seconds from the start to the measured window: ramp, warm-up, then a pause with no interactions."""
        return self.ramp + self.warmup + self.pause

    def counted(self, rec: Record) -> bool:
        return self.window_start <= rec.t < self.window_start + self.seconds

    async def run(self, on_warm: Callable[[], None] | None = None, on_pause: Callable[[], None] | None = None) -> None:
        """Open the sessions and run them; ``on_pause`` is called when the warm-up ends (the room holds still),
        ``on_warm`` when the pause ends and the measured window starts."""
        self.t0 = time.perf_counter()
        end = self.window_start + self.seconds

        async def warm() -> None:
            await asyncio.sleep(self.ramp + self.warmup)
            if on_pause:
                on_pause()
            await asyncio.sleep(max(0.0, self.window_start - self.now()))
            if on_warm:
                on_warm()

        async def kill() -> None:
            await asyncio.sleep(self.window_start + self.kill_at)
            self.killed_t = self.now()
            self.killed = await asyncio.to_thread(self.kill)

        extra = [kill()] if self.kill_at is not None and self.kill else []
        await asyncio.gather(warm(), *extra, *(self.session(i, end) for i in range(self.sessions)))

    def lost_to_the_kill(self, rec: Record) -> bool:
        """An interaction in flight on the killed replica when it died (expected to fail; its session reconnects)."""
        return (self.killed_t is not None and rec.replica == self.killed and rec.error.startswith("connection")
                and rec.t + rec.seconds >= self.killed_t - 0.5)

    async def reconnect(self, client: Client, view: View) -> bool:
        """The tab's connection dropped: reconnect as the frontend does; the page must come back from its URL."""
        t, was, trail = self.now(), client.replica, " | ".join(client.trail)
        # the tab's URL is what survives: a move the dead replica had applied before it died (its URL update had
        # arrived, its run had not finished) is in the URL, so the page must come back showing the URL's view
        q = parse_qs(client.query_string)
        try:
            view.cfg = SubnetConfig.parse(q["cfg"][0])
            view.hw = self.oracle.name_to_label.get(q["hw"][0], view.hw)
        except (KeyError, IndexError, ValueError):
            pass  # no view in the URL: the page must show the one the client had
        for attempt in range(1, RECONNECT_TRIES + 1):
            try:
                page = await client.reopen()
                break
            except ProtocolError as exc:
                if attempt == RECONNECT_TRIES:
                    self.records.append(Record("reconnect", self.now() - t, False, t,
                                               f"from {was or 'the server'}, {attempt} tries: {exc}", client.replica))
                    return False
                self.reconnect_retries += 1
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
        bad = check_explore(page, client, view, self.oracle)
        self.records.append(Record("reconnect", page.seconds, not bad, t,
                                   f"{'; '.join(bad)[:300]} [runs before: {trail}]" if bad else f"{was} -> {client.replica}",
                                   client.replica))
        return not bad

    async def session(self, i: int, end: float, reopened: int = 0) -> None:
        rng = random.Random(f"{self.seed}-{i}-{reopened}")
        follower = rng.random() < self.follow
        if not reopened:
            self.stats["followers"] += follower
            await asyncio.sleep(self.ramp * i / max(1, self.sessions))
        client = Client(self.url, self.timeout)
        view = View(hw=self.oracle.name_to_label.get("note10", ""))
        query = ""
        if follower and rng.random() < 0.5 and self.oracle.name_to_label:  # opened the presenter's link
            p = self.presenter()
            view = View(p.cfg, p.hw)
            query = f"cfg={p.cfg.to_compact()}&hw={self.oracle.label_to_name[p.hw]}"
            self.stats["link_opens"] += 1
        t = self.now()
        ok = True
        try:
            page = await client.open(query)
            _, hw = page.widget(HW_LABEL)
            if hw is not None and not view.hw:
                view.hw = hw.raw_value
            self._check_card(page)
            bad = check_explore(page, client, view, self.oracle)
            self.opens.append(Record("open", page.seconds, not bad, t, "; ".join(bad)[:400], client.replica))
            ok = not bad
        except ProtocolError as exc:
            self.opens.append(Record("open", self.now() - t, False, t, str(exc), client.replica))
            ok = False
        next_at = self.now() + rng.uniform(0, self.interval)
        try:
            while ok:
                if self.ramp + self.warmup <= next_at < self.window_start:  # the room holds still before the window
                    next_at = self.window_start + rng.uniform(0, self.interval)
                await asyncio.sleep(max(0.0, next_at - self.now()))
                if self.now() >= end:
                    break
                next_at += self.interval
                if rng.random() < self.upload_prob and self.photos:
                    ok = await self.upload(client, view, rng)
                else:
                    ok = await self.step(client, view, rng, follower)
                if not ok and client.lost and self.killed_t is not None:  # its replica died under it: the frontend reconnects
                    ok = await self.reconnect(client, view)
                next_at = max(next_at, self.now())  # one interaction in flight per client, like a person
                if not ok:
                    break
        finally:
            await client.close()
        if not ok and self.now() + self.interval < end:  # a broken page is reloaded by its person: a new session
            await asyncio.sleep(self.interval)
            await self.session(i, end, reopened + 1)

    def _check_card(self, page: Page) -> None:
        line = next((m for m in page.markdowns() if m.startswith("**Supernet:**")), "")
        if self.oracle.exact and f"`{self.oracle.card.name}`" not in line:
            self.oracle.exact = False  # another supernet: check consistency across sessions instead

    def _choose(self, view: View, rng: random.Random, follower: bool) -> tuple[str, str, object]:
        """(kind, dim or 'hw', new value) of the next move."""
        if follower:
            p = self.presenter()
            if view.cfg.d != p.cfg.d:  # depth first: raising it re-activates blocks at the smallest kernel / width
                return "slider", "d", p.shown("d")
            diffs = [d for d in SLIDERS if getattr(view.cfg, d) != getattr(p.cfg, d)] + (["hw"] if p.hw and p.hw != view.hw else [])
            if diffs:
                dim = rng.choice(diffs)
                if dim == "hw":
                    return "hardware", dim, p.hw
                if p.shown(dim) == view.shown(dim):  # a mixed config showing the target already: away first
                    return "slider", dim, next(c for c in CHOICES[dim] if c != view.shown(dim))
                return "slider", dim, p.shown(dim)
            dim = rng.choice(list(SLIDERS))  # at the presenter's config: nudge one slider a step, curious
            choices = CHOICES[dim]
            k = choices.index(view.shown(dim))
            k = k + 1 if k == 0 else k - 1 if k == len(choices) - 1 else k + rng.choice((-1, 1))
            return "slider", dim, choices[k]
        labels = list(self.oracle.label_to_name)
        if labels and rng.random() < 0.2:
            return "hardware", "hw", rng.choice([lb for lb in labels if lb != view.hw])
        dim = rng.choice(list(SLIDERS))
        return "slider", dim, rng.choice([c for c in CHOICES[dim] if c != view.shown(dim)])

    async def step(self, client: Client, view: View, rng: random.Random, follower: bool) -> bool:
        kind, dim, value = self._choose(view, rng, follower)
        label = HW_LABEL if dim == "hw" else SLIDERS[dim]
        _, widget = client.page.widget(label)
        t = self.now()
        if widget is None:
            self.records.append(Record(kind, 0.0, False, t, f"no widget {label!r} on the page"))
            return False
        state = string_state(widget.id, value) if dim == "hw" else select_slider_state(widget.id, value)
        before = client.page.metrics().get("Latency")
        try:
            page = await client.rerun((state,))
        except ProtocolError as exc:
            self.records.append(Record(kind, self.now() - t, False, t, str(exc), client.replica))
            return False
        if dim == "hw":
            view.hw = value
        else:
            view.move(dim, value)
        bad = check_explore(page, client, view, self.oracle)
        self.stats["latency_changed"] += page.metrics().get("Latency") != before
        self.records.append(Record(kind, page.seconds, not bad, t, "; ".join(bad)[:400], client.replica))
        return not bad

    async def upload(self, client: Client, view: View, rng: random.Random) -> bool:
        """Classify → Upload → a photo → back to Explore: four runs, as a person clicks them."""
        photo = rng.choice(self.photos)
        cfg = view.cfg

        async def timed(kind: str, call, check: Callable[[Page], list[str]]) -> Page | None:
            t = self.now()
            try:
                page = await call()
            except ProtocolError as exc:
                self.records.append(Record(kind, self.now() - t, False, t, str(exc), client.replica))
                return None
            bad = check(page)
            self.records.append(Record(kind, page.seconds, not bad, t, "; ".join(bad)[:400], client.replica))
            return None if bad else page

        def on_classify(page: Page) -> list[str]:
            bad = list(page.problems)
            if page.widget(SOURCE_LABEL)[1] is None:
                bad.append("Classify page without its image source choice")
            return bad

        classify = client.pages.get("Classify")
        if classify is None:
            self.records.append(Record("navigate", 0.0, False, self.now(), "no Classify page in the navigation"))
            return False
        page = await timed("classify_page", lambda: client.rerun(page_hash=classify), on_classify)
        if page is None:
            return False
        source = page.widget(SOURCE_LABEL)[1]
        page = await timed("navigate", lambda: client.rerun((string_state(source.id, "Upload"),)),
                           lambda p: list(p.problems) + ([] if p.widget(UPLOAD_LABEL)[1] is not None else ["no file uploader"]))
        if page is None:
            return False
        uploader = page.widget(UPLOAD_LABEL)[1]

        async def send() -> Page:
            state = await client.upload(uploader.id, photo.name, photo.read_bytes())
            return await client.rerun((state,))

        def on_answer(p: Page) -> list[str]:
            bad = list(p.problems)
            current = [m for m in p.markdowns() if m.startswith(f"**Current subnet** at {cfg.r}px")]
            largest = [m for m in p.markdowns() if m.startswith(f"**Largest subnet** at {cfg.r}px")]
            if len(current) != 1 or len(largest) != 1:
                return bad + [f"no answer for {photo.name} at {cfg.r}px (current {current[:1]}, largest {largest[:1]})"]
            for key, line in ((("current", photo.name, cfg.to_compact()), current[0]), (("largest", photo.name, cfg.r), largest[0])):
                answer = _top1(line)
                before = self.oracle.consistent(key, answer)
                if before is not None:
                    bad.append(f"{key[0]} subnet says {answer!r} for {photo.name}, another session got {before!r}")
            return bad

        if await timed("upload", send, on_answer) is None:
            return False
        explore = client.pages.get("Explore")
        page = await timed("navigate", lambda: client.rerun(page_hash=explore),
                           lambda p: check_explore(p, client, view, self.oracle))
        return page is not None


def _top1(line: str) -> str:
    """The class a "**… subnet** at Npx: …" line names (its probability dropped: it may differ in the last digit)."""
    answer = line.split(": ", 1)[1]
    if answer.startswith("not one of its"):
        return "not one of the classes, closest " + answer.split("closest: ", 1)[1].rsplit(" ", 1)[0]
    return answer.rsplit(" (", 1)[0]


# ----------------------------------------------------------------------------------------------- real browsers beside
async def browsers(url: str, n: int, until: float, records: list[Record], t0: float, seed: int) -> None:
    """``n`` chromium pages moving one Explore slider a step every 2 s: end-to-end latency (key press → new URL and
    the script finished), kind ``browser``."""
    if n <= 0:
        return
    from playwright.async_api import async_playwright

    idle = ("() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
            " return a && a.getAttribute('data-test-script-state') === 'notRunning'; }")

    async def one(browser, k: int) -> None:
        rng = random.Random(f"browser-{seed}-{k}")
        page = await browser.new_page()
        await page.goto(url + "/")
        await page.wait_for_selector('[data-testid="stMetricValue"]', timeout=120_000)
        while time.perf_counter() - t0 < until:
            await asyncio.sleep(2.0)
            slider = page.get_by_role("slider", name=rng.choice(list(SLIDERS.values())))
            start = time.perf_counter()
            try:
                value, hi = int(await slider.get_attribute("value")), int(await slider.get_attribute("max"))
                key = "ArrowLeft" if value == hi else "ArrowRight" if value == 0 else rng.choice(["ArrowLeft", "ArrowRight"])
                before = page.url
                await slider.focus()
                await page.keyboard.press(key)
                await page.wait_for_function("(u) => location.href !== u", arg=before, timeout=30_000)
                await page.wait_for_function(idle, timeout=30_000)
                ok = not await page.locator('[data-testid="stException"]').count()
                records.append(Record("browser", time.perf_counter() - start, ok, start - t0, "" if ok else "exception shown"))
            except Exception as exc:  # noqa: BLE001 - every failure is an error
                records.append(Record("browser", time.perf_counter() - start, False, start - t0, f"{type(exc).__name__}: {str(exc)[:120]}"))
        await page.close()

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        await asyncio.gather(*(one(browser, k) for k in range(n)))
        await browser.close()


# ----------------------------------------------------------------------------------------------- measurement
def rss_mb(pid: int) -> float:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by every core so far (/proc/stat)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def busy_processes(exclude: set[int], min_pct: float = 5.0) -> list[str]:
    """Other processes using CPU right now (sampled over 1 s): is the machine idle?"""
    try:
        import psutil
    except ImportError:
        return []
    procs = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.pid not in exclude]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(1.0)
    out = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if pct >= min_pct:
            out.append(f"{pct:.0f}% {' '.join(p.info['cmdline'] or [p.info['name']])[:100]}")
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def summarise(records: list[Record]) -> dict:
    ms = [r.seconds * 1000 for r in records if r.ok]
    return {"n": len(records), "errors": sum(not r.ok for r in records),
            "p50_ms": _round(percentile(ms, 0.5)), "p95_ms": _round(percentile(ms, 0.95)), "max_ms": _round(max(ms) if ms else None)}


def _trend(samples: list[float]) -> float | None:
    """Growth of the RSS over the window, robust to the swings of work in flight: the median of the last third of
    the 10-s samples against the median of the first third, in % (None below 6 samples)."""
    import statistics

    if len(samples) < 6:
        return None
    k = len(samples) // 3
    first, last = statistics.median(samples[:k]), statistics.median(samples[-k:])
    return round(100 * (last - first) / first, 1)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


async def measure(room: Room, pid: int | None, n_browsers: int, replica_pids: Callable[[], list[int]] | None = None) -> dict:
    """Run the room; ``pid`` is the server's (RSS and CPU), or ``replica_pids`` the replicas' now (RSS and CPU summed;
    a killed replica's CPU time goes with it, so then their CPU is in "everything else")."""
    me = os.getpid()
    marks: dict = {}
    pids = replica_pids or ((lambda: [pid]) if pid else None)  # whose RSS: the server's, or the live replicas' summed
    rss_now = (lambda: sum(rss_mb(p) for p in pids())) if pids else (lambda: None)

    def on_pause() -> None:
        marks["rss_warm_busy"] = rss_now()

    def on_warm() -> None:
        marks["rss_start"] = rss_now()
        marks["t"] = time.perf_counter()
        marks["busy"] = machine_busy_seconds()
        marks["server"] = {p: cpu_seconds(p) for p in pids()} if pids else None
        marks["client"] = cpu_seconds(me)

    async def sample_rss() -> None:
        while True:
            await asyncio.sleep(10)
            marks.setdefault("rss_samples", []).append(round(rss_now()))

    sampler = asyncio.create_task(sample_rss()) if pids else None
    until = room.window_start + room.seconds
    browser_records: list[Record] = []
    t_start = time.perf_counter()
    await asyncio.gather(room.run(on_warm, on_pause), browsers(room.url, n_browsers, until, browser_records, t_start, room.seed))
    window = time.perf_counter() - marks["t"]
    busy = machine_busy_seconds() - marks["busy"]
    now = {p: cpu_seconds(p) for p in pids()} if pids else None
    server = sum(now[p] - marks["server"][p] for p in now) if now and now.keys() == marks["server"].keys() else None
    client = cpu_seconds(me) - marks["client"]
    if sampler:
        sampler.cancel()
    rss_end_busy = rss_now()
    await asyncio.sleep(room.pause)  # the room holds still again: what the server keeps, not what it is working with
    rss_end = rss_now()
    cores = os.cpu_count() or 1
    counted = [r for r in room.records if room.counted(r)]
    target = [r for r in counted if r.kind in TARGET_KINDS]
    head = summarise(target)
    lost = [r for r in room.records if room.lost_to_the_kill(r)]
    errors = [r for r in room.records + room.opens + browser_records if not r.ok and not room.lost_to_the_kill(r)]
    kinds = {k: summarise([r for r in counted if r.kind == k and not room.lost_to_the_kill(r)])
             for k in ("slider", "hardware", "upload", "classify_page", "navigate", "reconnect")}
    if not kinds["reconnect"]["n"]:
        del kinds["reconnect"]
    if browser_records:
        kinds["browser"] = summarise([r for r in browser_records if room.counted(r)])
    return {
        "sessions": room.sessions,
        "seconds": room.seconds,
        "interactions": len(counted),
        "interactions_per_s": round(len(counted) / room.seconds, 2) if room.seconds else None,
        "demand_per_s": round(room.sessions / room.interval, 2),
        "errors": len(errors),
        "p50_ms": head["p50_ms"], "p95_ms": head["p95_ms"], "max_ms": head["max_ms"],
        "latency_of": list(TARGET_KINDS),
        "by_kind": kinds,
        "opens": summarise(room.opens),
        "warmup_interactions": sum(not room.counted(r) for r in room.records),
        "rss_start_mb": _round(marks.get("rss_start")), "rss_end_mb": _round(rss_end),
        "rss_busy_mb": {"warm_up_end": _round(marks.get("rss_warm_busy")), "run_end": _round(rss_end_busy)},
        "rss_max_mb": _round(max(marks.get("rss_samples", []) + [rss_end or 0, rss_end_busy or 0])) if pids else None,
        "rss_every_10s_mb": marks.get("rss_samples", []),
        "rss_trend_pct": _trend(marks.get("rss_samples", [])),
        "rss_growth_pct": _round(100 * (rss_end - marks["rss_start"]) / marks["rss_start"]) if pids else None,
        "cpu": {"window_s": round(window, 1), "cores": cores,
                "machine_busy_pct": round(100 * busy / (window * cores), 1),
                "server_pct": round(100 * server / (window * cores), 1) if server is not None else None,
                "clients_pct": round(100 * client / (window * cores), 1),
                "other_pct": round(100 * (busy - (server or 0) - client) / (window * cores), 1),
                "client_ms_per_interaction": round(1000 * client / max(1, len(counted)), 1)},
        "error_examples": [f"{r.kind} @{r.t:.1f}s{' on ' + r.replica if r.replica else ''}: {r.error}" for r in errors[:12]],
        "replicas": sorted({r.replica for r in room.opens if r.replica}),
        "sessions_by_replica": {name: sum(r.replica == name for r in room.opens)
                                for name in sorted({r.replica for r in room.opens if r.replica})},
        "failover": None if room.killed_t is None else {
            "killed": room.killed, "at_s": round(room.killed_t - room.window_start, 1),
            "interactions_lost": len(lost),
            "reconnects": sum(r.kind == "reconnect" for r in room.records),
            "reconnects_failed": sum(r.kind == "reconnect" and not r.ok for r in room.records),
            "reconnect_retries": room.reconnect_retries,
            "moved_to": sorted({r.replica for r in room.records if r.kind == "reconnect" and r.ok}),
            "errors_on_other_replicas": sum(1 for r in errors if r.replica and r.replica != room.killed),
            "errors_on_killed_replica": sum(1 for r in errors if r.replica == room.killed),
        },
        "room": {"followers": room.stats["followers"], "opened_presenter_link": room.stats["link_opens"],
                 "interval_s": room.interval, "upload_prob": room.upload_prob, "presenter_every_s": room.presenter_every,
                 "ramp_s": room.ramp, "warmup_s": room.warmup, "pause_s": room.pause, "timeout_s": room.timeout, "seed": room.seed,
                 "tiles_checked_against": "app.display.metric_tiles" if room.oracle.exact else "other sessions",
                 "latency_tile_changed": room.stats["latency_changed"], "browsers": n_browsers},
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=120.0, help="measured window, after the ramp and the warm-up")
    ap.add_argument("--warmup", type=float, default=30.0,
                    help="seconds of interactions before the window (not counted; the caches fill)")
    ap.add_argument("--ramp", type=float, default=10.0, help="seconds over which the sessions open")
    ap.add_argument("--pause", type=float, default=10.0,
                    help="seconds the room holds still after the warm-up and after the run before RSS is read")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between one client's interactions")
    ap.add_argument("--follow", type=float, default=0.7, help="share of the room following the presenter")
    ap.add_argument("--upload-prob", type=float, default=0.02, help="chance per step of a Classify upload instead")
    ap.add_argument("--presenter-every", type=float, default=20.0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before an interaction is an error")
    ap.add_argument("--browsers", type=int, default=0, help="real chromium sessions beside the clients (e.g. 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--url", help="an app already running (default: start one on a free loopback port)")
    ap.add_argument("--replicas", type=int, default=0,
                    help="start N replicas behind haproxy with rooms in Redis (app.ui.replicas) instead of one server")
    ap.add_argument("--kill-replica-at", type=float, metavar="S",
                    help="with --replicas: kill replica r1 (SIGKILL) S seconds into the measured window")
    ap.add_argument("--server-env", action="append", default=[], metavar="K=V",
                    help="environment of the started app, e.g. OFA_EXPLORER_THREADS=1")
    ap.add_argument("--format", choices=("table", "json"), default="table")
    args = ap.parse_args(argv)
    from common import commit, header, machine, table

    load_before = os.getloadavg()
    busy_before = busy_processes({os.getpid()})

    def go(url: str, pid: int | None, cluster=None) -> dict:
        kill = None
        if cluster is not None and args.kill_replica_at is not None:
            def kill() -> str:  # noqa: E306
                cluster.kill("r1")
                return "r1"
        room = Room(url, sessions=args.sessions, seconds=args.seconds, warmup=args.warmup, ramp=args.ramp, pause=args.pause,
                    interval=args.interval, follow=args.follow, upload_prob=args.upload_prob,
                    presenter_every=args.presenter_every, timeout=args.timeout, seed=args.seed,
                    kill_at=args.kill_replica_at if kill else None, kill=kill)
        pids = (lambda: list(cluster.pids().values())) if cluster is not None else None
        return asyncio.run(measure(room, pid, args.browsers, pids))

    env = dict(kv.split("=", 1) for kv in args.server_env)
    if args.url:
        res = go(args.url.rstrip("/"), None)
    elif args.replicas:
        from app.ui.replicas import serving_replicas

        with serving_replicas(args.replicas, env=env) as cluster:
            res = go(cluster.url, None, cluster)
            res["server_logs"] = str(cluster.workdir)
    else:
        from app.ui.serve import serving

        with serving(env=env) as app:
            res = go(app.url, app.pid)
    res.update({"machine": machine(), "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "url": args.url or (f"{args.replicas} replicas behind haproxy on 127.0.0.1 (app.ui.replicas)" if args.replicas
                                    else "started on 127.0.0.1 (app.ui.serve)"), "server_env": args.server_env,
                "load_before": [round(x, 2) for x in load_before], "busy_before": busy_before})
    if args.format == "json":
        print(json.dumps(res))
        return res
    print(header(f"Room load: {args.sessions} protocol sessions x {args.seconds:.0f} s, one interaction per "
                 f"{args.interval:g} s each (Explore; uploads on Classify)"))
    ms = lambda x: "–" if x is None else round(x)  # noqa: E731
    rows = [[k, v["n"], v["errors"], ms(v["p50_ms"]), ms(v["p95_ms"]), ms(v["max_ms"])] for k, v in res["by_kind"].items()]
    rows.append(["slider + hardware", sum(res["by_kind"][k]["n"] for k in TARGET_KINDS),
                 sum(res["by_kind"][k]["errors"] for k in TARGET_KINDS), ms(res["p50_ms"]), ms(res["p95_ms"]), ms(res["max_ms"])])
    o = res["opens"]
    rows.append(["session open", o["n"], o["errors"], ms(o["p50_ms"]), ms(o["p95_ms"]), ms(o["max_ms"])])
    print(table(["interaction", "n", "errors", "p50 ms", "p95 ms", "max ms"], rows))
    c = res["cpu"]
    print(f"\nerrors (all kinds, warm-up and opens included): {res['errors']}; interactions in the window: "
          f"{res['interactions']} ({res['interactions_per_s']}/s served, {res['demand_per_s']}/s asked)")
    print(f"server RSS (room still for {args.pause:g} s): {res['rss_start_mb']} MB after warm-up, {res['rss_end_mb']} MB "
          f"after the run ({res['rss_growth_pct']:+}%); under load {res['rss_busy_mb']['warm_up_end']} MB as the "
          f"warm-up ended, {res['rss_busy_mb']['run_end']} MB as the run ended, max {res['rss_max_mb']} MB; trend over the window (median of the last third of "
          f"the 10-s samples vs the first third) {res['rss_trend_pct']}%" if res["rss_start_mb"] else "server RSS: not measured (--url)")
    print(f"CPU over the {c['window_s']} s window ({c['cores']} cores = 100%): machine {c['machine_busy_pct']}%, "
          f"server {c['server_pct']}%, these clients {c['clients_pct']}% ({c['client_ms_per_interaction']} ms per "
          f"interaction), everything else {c['other_pct']}%")
    print(f"load average before: {res['load_before']}; busy processes before: {res['busy_before'] or 'none'}")
    if res["replicas"]:
        print(f"replicas: sessions opened per replica {res['sessions_by_replica']}")
    f = res["failover"]
    if f:
        print(f"failover: {f['killed']} killed {f['at_s']} s into the window; {f['interactions_lost']} interactions in "
              f"flight lost with it; {f['reconnects']} reconnects ({f['reconnects_failed']} failed, {f['reconnect_retries']} "
              f"retried) to {f['moved_to']}; "
              f"errors on the other replicas {f['errors_on_other_replicas']}, on the killed one {f['errors_on_killed_replica']}")
    for e in res["error_examples"]:
        print("error:", e)
    return res


if __name__ == "__main__":
    main()
