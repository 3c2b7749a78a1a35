"""Run an ONNX subnet in the viewer's browser (onnxruntime-web: WASM, 1 thread, or WebGPU) and get its outputs and
latency back.

A Streamlit v2 component (no iframe): Python serves the model and the input tensor as the app's own media files
(content-addressed URLs, so the browser's session cache of a model holds per subnet), the JavaScript beside this
module (``browser_runtime_web/runtime.js``) loads onnxruntime-web from the app's ``/app/static/onnxruntime-web/``
(``scripts/fetch_web_runtime.py`` put it there, pinned and verified), runs warm-up and timed forward passes, and
sends back JSON that :func:`app.ui.browser_report.parse_report` validates before anything is shown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import streamlit as st

from app.ui.browser_report import BACKENDS, MAX_REPORT_CHARS, BrowserProfile, BrowserReportError, BrowserRun, parse_report

WEB = Path(__file__).resolve().parent / "browser_runtime_web"
MANIFEST = WEB / "onnxruntime-web.json"
STATIC_DIR = Path(__file__).resolve().parents[2] / "static" / "onnxruntime-web"
COMPONENT_NAME = "ofa_explorer.browser_runtime"
RUNS, WARMUP = 5, 2

_HTML = ('<progress class="ofa-browser-progress" hidden value="0" max="1"></progress>'
         '<div class="ofa-browser-status">Starting the in-browser runtime…</div>')
_CSS = (".ofa-browser-status { font-size: 0.85rem; color: var(--st-text-color); opacity: 0.7; }"
        ".ofa-browser-progress { width: 100%; height: 0.6rem; accent-color: var(--st-primary-color); }")


@dataclass(frozen=True)
class BrowserModel:
    """An ONNX model to send to the browser, with its content digest (computed once)."""

    data: bytes
    sha256: str
    input_name: str = "image"

    @classmethod
    def of(cls, data: bytes, *, input_name: str = "image") -> "BrowserModel":
        return cls(data, hashlib.sha256(data).hexdigest(), input_name)


@dataclass(frozen=True)
class InBrowser:
    """Where an in-browser run stands: ``run`` once measured and valid, ``problem`` (one line) if it cannot be used,
    neither while the browser is still working."""

    run: BrowserRun | None = None
    problem: str | None = None

    @property
    def pending(self) -> bool:
        return self.run is None and self.problem is None


@lru_cache(maxsize=1)
def _mount():
    return st.components.v2.component(COMPONENT_NAME, html=_HTML, css=_CSS, js=(WEB / "runtime.js").read_text("utf-8"))


@lru_cache(maxsize=1)
def runtime_missing() -> str | None:
    """Why the in-browser runtime cannot be served here (one line), or None when it can."""
    files = json.loads(MANIFEST.read_text("utf-8"))["files"]
    if not all((STATIC_DIR / name).is_file() for name in files):
        return "The in-browser runtime is not installed on this server (`make install` fetches it)."
    if not st.get_option("server.enableStaticServing"):
        return "The in-browser runtime needs static serving (`server.enableStaticServing`, set in streamlit_config.toml)."
    return None


def request_id(*, model: BrowserModel, inputs: np.ndarray, runs: int, warmup: int, backend: str = "wasm") -> str:
    """The identity of one measurement: the model, the input, the backend asked for and how it is timed."""
    h = hashlib.sha256(model.sha256.encode())
    h.update(repr((inputs.shape, runs, warmup, backend)).encode())
    h.update(np.ascontiguousarray(inputs, dtype="<f4").tobytes())
    return h.hexdigest()[:32]


def _base_path() -> str:
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def _serve(data: bytes, *, coordinates: str) -> str:
    """``data`` as one of this session's media files (kept while the page shows it); its URL on this origin."""
    from streamlit import runtime

    return _base_path() + runtime.get_instance().media_file_mgr.add(data, "application/octet-stream", coordinates)


def _is_earlier_run(text, rid: str) -> bool:
    """Whether ``text`` is a well-formed report of another request (anything else goes to the validation)."""
    if not isinstance(text, str) or len(text) > MAX_REPORT_CHARS:
        return False
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("request_id"), str) and doc["request_id"] != rid


def run_in_browser(*, model: BrowserModel, inputs: np.ndarray, output_shape: tuple[int, ...], key: str,
                   runs: int = RUNS, warmup: int = WARMUP, backend: str = "wasm") -> InBrowser:
    """Ask the viewer's browser to run ``model`` on ``inputs`` (float32, e.g. 1 x 3 x r x r): ``warmup`` untimed
    passes, then ``runs`` timed ones, on ``backend`` ("wasm", or "webgpu" where the browser has it: the report
    names the backend that ran). Returns at once; the component reruns the page when the browser reports."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: one of {', '.join(BACKENDS)}; got {backend!r}")
    missing = runtime_missing()
    if missing:
        return InBrowser(problem=missing)
    inputs = np.ascontiguousarray(inputs, dtype="<f4")
    rid = request_id(model=model, inputs=inputs, runs=runs, warmup=warmup, backend=backend)
    task = {
        "request_id": rid,
        "runtime_base": _base_path() + "/app/static/onnxruntime-web/",
        "model_url": _serve(model.data, coordinates=f"{key}.model"),
        "input_url": _serve(inputs.tobytes(), coordinates=f"{key}.input"),
        "input_name": model.input_name,
        "input_shape": list(inputs.shape),
        "runs": runs,
        "warmup": warmup,
        "backend": backend,
    }
    result = _mount()(key=key, data=task, on_report_change=lambda: None, height="content")
    text = result.get("report") if result is not None else None
    if text is None:
        return InBrowser()
    if _is_earlier_run(text, rid):
        return InBrowser()  # the report of an earlier run: this one is still being measured
    try:
        return InBrowser(run=parse_report(text, request_id=rid, output_shape=output_shape))
    except BrowserReportError as exc:
        return InBrowser(problem=str(exc))


@dataclass(frozen=True)
class Profiling:
    """Where an in-browser device profile stands: ``profile`` once valid, ``problem`` (one line) if it failed."""

    profile: "BrowserProfile | None" = None
    problem: str | None = None

    @property
    def pending(self) -> bool:
        return self.profile is None and self.problem is None


def profile_in_browser(*, probes: list[tuple[tuple[int, ...], BrowserModel]], key: str, runs: int = 5,
                       warmup: int = 2) -> Profiling:
    """Ask the viewer's browser to time each probe model (input shape, model) — ``warmup`` untimed passes, then
    ``runs`` timed ones — with a progress bar in the page. Returns at once; the page reruns when the browser reports."""
    from app.ui.browser_report import parse_profile

    missing = runtime_missing()
    if missing:
        return Profiling(problem=missing)
    h = hashlib.sha256(repr(("profile", runs, warmup)).encode())
    for shape, model in probes:
        h.update(repr(shape).encode() + model.sha256.encode())
    rid = h.hexdigest()[:32]
    task = {
        "kind": "profile",
        "request_id": rid,
        "runtime_base": _base_path() + "/app/static/onnxruntime-web/",
        "probes": [{"url": _serve(model.data, coordinates=f"{key}.probe{i}"), "input_shape": list(shape),
                    "input_name": model.input_name} for i, (shape, model) in enumerate(probes)],
        "runs": runs,
        "warmup": warmup,
    }
    result = _mount()(key=key, data=task, on_report_change=lambda: None, height="content")
    text = result.get("report") if result is not None else None
    if text is None or _is_earlier_run(text, rid):
        return Profiling()
    try:
        return Profiling(profile=parse_profile(text, request_id=rid, probes=len(probes)))
    except BrowserReportError as exc:
        return Profiling(problem=str(exc))
