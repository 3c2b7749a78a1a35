"""Classify on this device: the live subnet runs in the viewer's browser on the same preprocessed image.

The image is preprocessed here exactly as :func:`app.classify.classify` does (:func:`app.data.image_tensor`); the
forward pass runs in the browser (:mod:`app.ui.browser_runtime`), and only the softmax and top-5 of the 10 (or
1,000) returned logits are computed here.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import streamlit as st

from app.data import image_tensor
from app.space import SubnetConfig
from app.ui import charts
from app.ui.browser_runtime import WARMUP, BrowserModel, run_in_browser

SESSION_MODELS = 2  # ONNX files kept per session (the largest subnet's fp32 file is ~37 MB)
TOGGLE_LABEL = "Run on this device (in your browser)"
WEBGPU_LABEL = "Use WebGPU where this browser has it"


def _session_model(sub, cfg: SubnetConfig, card, precision: str = "fp32") -> BrowserModel:
    """The subnet as ONNX (BN folded), fp32 or int8 (the app's int8 recipe in its browser form,
    :func:`app.quantize.int8_subnet` with ``for_browser``), exported once per config, precision and session."""
    from app.quantize import int8_subnet, onnx_fp32

    cache: OrderedDict = st.session_state.setdefault("_browser_models", OrderedDict())
    key = (card.sha256, card.name, cfg.to_compact(), precision)
    if key not in cache:
        with st.spinner(f"Exporting the subnet in {precision} for your browser (once per subnet)…"):
            cache[key] = BrowserModel.of(int8_subnet(sub, card, for_browser=True).data if precision == "int8" else onnx_fp32(sub))
        while len(cache) > SESSION_MODELS:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return cache[key]


def top_k(logits: np.ndarray, k: int = 5) -> tuple[list[int], list[float]]:
    """Indices and softmax probabilities of the ``k`` largest logits (float64 softmax, as stable as torch's)."""
    z = logits.astype(np.float64) - logits.max()
    p = np.exp(z) / np.exp(z).sum()
    idx = np.argsort(-p, kind="stable")[: min(k, p.size)]
    return idx.tolist(), p[idx].tolist()


def render(*, sub, cfg: SubnetConfig, image, card, server_top1: str | None = None, precision: str = "fp32") -> None:
    """The opt-in control and, when on, the subnet's top-5 and latency measured in the viewer's browser."""
    if not st.toggle(TOGGLE_LABEL, key="classify_in_browser",
                     help="The subnet is sent to your browser once (cached per subnet for this page) and runs there "
                          "with onnxruntime-web, served by this app; this server does not run that forward pass."):
        return
    from app.quantize import QuantizationError

    try:
        model = _session_model(sub, cfg, card, precision)
    except QuantizationError as exc:  # one line for people
        st.error(str(exc))
        return
    backend = "webgpu" if st.checkbox(WEBGPU_LABEL, key="classify_in_browser_webgpu",
                                      help="WebGPU runs the subnet on your device's graphics processor. Browsers offer it "
                                           "only to secure pages (https, or this app on localhost); elsewhere the "
                                           "subnet runs on WASM and the page says so.") else "wasm"
    x = image_tensor(image, cfg.r, card.mean, card.std).numpy()
    state = run_in_browser(model=model, inputs=x, output_shape=(1, card.num_classes), key="classify_browser_run",
                           backend=backend)
    if state.problem:
        st.error(state.problem)
        return
    if state.pending:
        st.caption("Running the subnet in your browser…")
        return
    run = state.run
    idx, probs = top_k(run.outputs[0])
    labels = [card.classes[i] for i in idx]
    st.markdown(f"**This device** (in your browser) at {cfg.r}px: {labels[0]} ({probs[0]:.0%})"
                + ("" if server_top1 is None else (" — same top class as this server" if labels[0] == server_top1
                                                   else f" — this server says {server_top1}")))
    st.altair_chart(charts.topk_chart(labels, probs), width="stretch")
    st.caption(f"Latency {run.latency_ms:.1f} ms — {run.source}; median of {len(run.latencies_ms)} runs after "
               f"{WARMUP} warm-up runs, {precision} ONNX. This server did not run this forward pass.")
    if backend == "webgpu" and run.backend != "webgpu":
        st.caption("WebGPU is not available here (browsers offer it to secure pages — https, or localhost — that have "
                   "a WebGPU adapter), so the subnet ran on WASM.")
    with st.expander("The subnet's raw outputs in your browser (logits)"):
        st.code(json.dumps([float(v) for v in run.outputs[0]]), language="json")
