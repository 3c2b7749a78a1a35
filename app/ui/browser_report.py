"""What a browser reports after running a subnet (:mod:`app.ui.browser_runtime`), checked before anything uses it.

The report is JSON text written by JavaScript in the viewer's browser: untrusted. :func:`parse_report` accepts
only a well-formed report of the run that was asked for — finite outputs of the expected count, latencies that are
finite, non-negative and bounded, a known backend — and turns anything else into a :class:`BrowserReportError`
whose message is one line for people. Nothing is stored here; the caller keeps only what this returns.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass

import numpy as np

MAX_REPORT_CHARS = 2_000_000  # 50,000 float32 outputs as JSON text fit comfortably
MAX_OUTPUT_VALUES = 50_000  # e.g. a batch of 50 images x 1,000 classes
MAX_LATENCY_MS = 600_000.0  # 10 minutes for one forward pass: anything above is not a measurement
MAX_RUNS = 50
BACKENDS = ("wasm", "webgpu")
BACKEND_LABELS = {"wasm": "WASM, 1 thread", "webgpu": "WebGPU"}
_REQUEST_ID = re.compile(r"^[0-9a-f]{16,64}$")


class BrowserReportError(ValueError):
    """A browser's report that cannot be used (one line for people)."""


@dataclass(frozen=True)
class BrowserRun:
    """One validated in-browser run: the model's outputs and the forward-pass latencies measured there."""

    request_id: str
    outputs: np.ndarray  # float32, the shape that was asked for
    latencies_ms: tuple[float, ...]  # one per timed run, after warm-up
    backend: str  # one of BACKENDS

    @property
    def latency_ms(self) -> float:
        """Median of the timed runs."""
        return float(statistics.median(self.latencies_ms))

    @property
    def source(self) -> str:
        """Where the latency comes from, for every place that shows it."""
        return f"measured in your browser ({BACKEND_LABELS[self.backend]})"


def _finite_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BrowserReportError(f"The browser sent a {what} that is not a number; nothing was kept.")
    if not math.isfinite(value):
        raise BrowserReportError(f"The browser sent a {what} that is not a finite number; nothing was kept.")
    return float(value)


def parse_report(text, *, request_id: str, output_shape: tuple[int, ...]) -> BrowserRun:
    """The browser's JSON ``text`` as a :class:`BrowserRun` for ``request_id``, whose outputs must have
    ``output_shape``; raises :class:`BrowserReportError` (one line) for anything malformed, out of bounds or
    for another request."""
    if not isinstance(text, str):
        raise BrowserReportError("The browser's report is not text; nothing was kept.")
    if len(text) > MAX_REPORT_CHARS:
        raise BrowserReportError("The browser's report is too large; nothing was kept.")
    try:
        doc = json.loads(text, parse_constant=lambda name: float("nan"))
    except (ValueError, RecursionError):
        raise BrowserReportError("The browser's report is not valid JSON; nothing was kept.") from None
    if not isinstance(doc, dict):
        raise BrowserReportError("The browser's report is not a JSON object; nothing was kept.")
    if doc.get("request_id") != request_id or not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise BrowserReportError("The browser's report is for another run; nothing was kept.")
    if "error" in doc:
        message = doc["error"]
        if not isinstance(message, str):
            raise BrowserReportError("The browser could not run the subnet; nothing was kept.")
        # the browser's own words, shown as plain text: one line, bounded, no markup characters
        clean = re.sub(r"[^\w .,:;'()/+-]", " ", message.splitlines()[0] if message else "")[:160].strip()
        raise BrowserReportError(f"Your browser could not run the subnet ({clean or 'no reason given'}).")
    backend = doc.get("backend")
    if backend not in BACKENDS:
        raise BrowserReportError("The browser's report names an unknown backend; nothing was kept.")

    expected = int(np.prod(output_shape))
    if expected > MAX_OUTPUT_VALUES:
        raise BrowserReportError("The run asked for more outputs than the app accepts; nothing was kept.")
    values = doc.get("outputs")
    if not isinstance(values, list):
        raise BrowserReportError("The browser's report has no list of outputs; nothing was kept.")
    if len(values) != expected:
        raise BrowserReportError(f"The browser sent {min(len(values), 10**9):,} output values where the subnet has "
                                 f"{expected:,}; nothing was kept.")
    outputs = np.array([_finite_number(v, "output value") for v in values], dtype=np.float64)
    if np.abs(outputs).max(initial=0.0) > 3.0e38:
        raise BrowserReportError("The browser sent an output value outside float32's range; nothing was kept.")

    runs = doc.get("latencies_ms")
    if not isinstance(runs, list) or not runs:
        raise BrowserReportError("The browser's report has no latencies; nothing was kept.")
    if len(runs) > MAX_RUNS:
        raise BrowserReportError(f"The browser sent {min(len(runs), 10**9):,} latencies, more than the {MAX_RUNS} "
                                 "the app asks for; nothing was kept.")
    latencies = tuple(_finite_number(v, "latency") for v in runs)
    if min(latencies) < 0:
        raise BrowserReportError("The browser sent a negative latency; nothing was kept.")
    if max(latencies) > MAX_LATENCY_MS:
        raise BrowserReportError(f"The browser sent a latency above {MAX_LATENCY_MS / 60_000:.0f} minutes, not a "
                                 "measurement; nothing was kept.")
    return BrowserRun(request_id, outputs.astype(np.float32).reshape(output_shape), latencies, backend)


@dataclass(frozen=True)
class BrowserProfile:
    """A validated device profile: per probe subnet, the latencies timed in the browser."""

    request_id: str
    latencies_ms: tuple[tuple[float, ...], ...]  # one tuple of timed runs per probe, in the order asked
    backend: str

    @property
    def medians_ms(self) -> tuple[float, ...]:
        return tuple(float(statistics.median(runs)) for runs in self.latencies_ms)


def _latencies(runs, what: str) -> tuple[float, ...]:
    if not isinstance(runs, list) or not runs:
        raise BrowserReportError(f"The browser's report has no latencies for {what}; nothing was kept.")
    if len(runs) > MAX_RUNS:
        raise BrowserReportError(f"The browser sent {min(len(runs), 10**9):,} latencies for {what}, more than the "
                                 f"{MAX_RUNS} the app asks for; nothing was kept.")
    latencies = tuple(_finite_number(v, "latency") for v in runs)
    if min(latencies) < 0:
        raise BrowserReportError("The browser sent a negative latency; nothing was kept.")
    if max(latencies) > MAX_LATENCY_MS:
        raise BrowserReportError(f"The browser sent a latency above {MAX_LATENCY_MS / 60_000:.0f} minutes, not a "
                                 "measurement; nothing was kept.")
    if statistics.median(latencies) <= 0:
        raise BrowserReportError("The browser sent zero latencies, not a measurement; nothing was kept.")
    return latencies


def parse_profile(text, *, request_id: str, probes: int) -> BrowserProfile:
    """The browser's JSON ``text`` as a :class:`BrowserProfile` of ``probes`` subnets for ``request_id``; raises
    :class:`BrowserReportError` (one line) for anything malformed, out of bounds or for another request."""
    if not isinstance(text, str):
        raise BrowserReportError("The browser's report is not text; nothing was kept.")
    if len(text) > MAX_REPORT_CHARS:
        raise BrowserReportError("The browser's report is too large; nothing was kept.")
    try:
        doc = json.loads(text, parse_constant=lambda name: float("nan"))
    except (ValueError, RecursionError):
        raise BrowserReportError("The browser's report is not valid JSON; nothing was kept.") from None
    if not isinstance(doc, dict):
        raise BrowserReportError("The browser's report is not a JSON object; nothing was kept.")
    if doc.get("request_id") != request_id or not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise BrowserReportError("The browser's report is for another run; nothing was kept.")
    if "error" in doc:
        message = doc["error"]
        clean = re.sub(r"[^\w .,:;'()/+-]", " ", message.splitlines()[0] if isinstance(message, str) and message else "")
        raise BrowserReportError(f"Your browser could not profile itself ({clean[:160].strip() or 'no reason given'}).")
    if doc.get("backend") not in BACKENDS:
        raise BrowserReportError("The browser's report names an unknown backend; nothing was kept.")
    per_probe = doc.get("latencies_ms")
    if not isinstance(per_probe, list):
        raise BrowserReportError("The browser's report has no list of latencies; nothing was kept.")
    if len(per_probe) != probes:
        raise BrowserReportError(f"The browser timed {min(len(per_probe), 10**9):,} subnets where the app sent "
                                 f"{probes}; nothing was kept.")
    runs = tuple(_latencies(r, f"subnet {i + 1}") for i, r in enumerate(per_probe))
    return BrowserProfile(request_id, runs, doc["backend"])


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("CriOS/", "Chrome"), ("FxiOS/", "Firefox"),
             ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("CrOS", "ChromeOS"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"))


def browser_family(user_agent) -> str:
    """"Chrome on Android", "Safari on iOS", …: the only thing kept about a browser, from fixed lists (never the
    user agent's own text, so nothing a browser sends is shown)."""
    ua = user_agent if isinstance(user_agent, str) else ""
    ua = ua[:1000]
    browser = next((name for token, name in _BROWSERS if token in ua), "a browser")
    system = next((name for token, name in _SYSTEMS if token in ua), "an unknown system")
    if "HeadlessChrome" in ua:
        browser = "headless Chrome"
    return f"{browser} on {system}"
