"""Precision on this machine: quantize the current subnet to int8 and measure it against fp32 (onnxruntime, CPU)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.space import SubnetConfig
from app.ui import resources

MEASURED_KEEP = 8  # configs whose measurements a session keeps


def _measure(cfg: SubnetConfig, progress) -> dict:
    """fp32 and int8 onnxruntime latency (1 thread, median of 20) and file size of ``cfg``, measured here."""
    from app import quantize

    net = resources.supernet()
    progress(0.05, "Extracting the subnet…")
    sub, _ = resources.session_subnet(cfg)
    progress(0.15, "Exporting fp32 ONNX…")
    fp32 = quantize.OnnxSubnet(quantize.onnx_fp32(sub), cfg, "fp32")
    progress(0.3, "Quantizing to int8 (calibrating activation ranges on the bundled training images)…")
    int8 = quantize.int8_subnet(sub, net.card)
    progress(0.8, "Timing both on this CPU…")
    out = {"fp32_ms": fp32.latency_ms(), "int8_ms": int8.latency_ms(), "fp32_mb": fp32.size_bytes / 1e6,
           "int8_mb": int8.size_bytes / 1e6}
    progress(1.0, "Done.")
    return out


def measured_here(cfg: SubnetConfig) -> dict | None:
    """This session's measurement of ``cfg`` (None until measured)."""
    return st.session_state.get("_int8_measured", {}).get(cfg.to_compact())


def render(cfg: SubnetConfig) -> None:
    """The "measure int8 here" panel: a button, a progress bar, then latency and size side by side."""
    from app import quantize

    if not quantize.onnxruntime_available():
        st.info("int8 needs onnx and onnxruntime (installed by `make run`).")
        return
    st.caption("Quantizes the current subnet (static int8, onnxruntime) and times it against its fp32 ONNX file on the CPU "
               "serving this app: one thread, batch 1, median of 20 runs. Takes 3–20 s the first time for a config.")
    if st.button("Measure fp32 and int8 on this machine", key="int8_measure", icon=":material/speed:"):
        bar = st.progress(0.0, text="Starting…")
        try:
            with resources.heavy_work("the int8 measurement"):
                result = _measure(cfg, lambda f, text: bar.progress(f, text=text))
        except quantize.QuantizationError as exc:
            bar.empty()
            st.error(str(exc))
            return
        bar.empty()
        done = st.session_state.setdefault("_int8_measured", {})
        done[cfg.to_compact()] = result
        while len(done) > MEASURED_KEEP:
            done.pop(next(iter(done)))
    m = measured_here(cfg)
    if m is None:
        return
    a, b, c = st.columns(3)
    a.metric("int8 latency here", f"{m['int8_ms']:.1f} ms", f"{m['fp32_ms'] / m['int8_ms']:.2f}× fp32's speed", delta_color="off",
             help="measured on this machine: onnxruntime CPU, 1 thread, batch 1, median of 20")
    b.metric("fp32 latency here", f"{m['fp32_ms']:.1f} ms", help="the same subnet's fp32 ONNX file, same run")
    c.metric("int8 file", f"{m['int8_mb']:.1f} MB", f"{m['fp32_mb'] / m['int8_mb']:.1f}× smaller than fp32 ({m['fp32_mb']:.1f} MB)",
             delta_color="off")
    frame = pd.DataFrame({"precision": ["fp32", "int8"], "latency (ms)": [m["fp32_ms"], m["int8_ms"]]})
    st.bar_chart(frame, x="precision", y="latency (ms)", horizontal=True, height=140)
    st.caption("int8's gain comes from the 1×1 convolutions: onnxruntime's int8 depthwise convolutions are slower than its "
               "fp32 ones on x86, and in a browser (WASM) int8 is slower than fp32 (see docs/measured.md, int8).")
