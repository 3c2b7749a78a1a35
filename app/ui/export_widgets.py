"""Download buttons for the current subnet in every export format."""

from __future__ import annotations

import streamlit as st

from app.export import ExportError, export_bytes, onnx_available
from app.space import SubnetConfig
from app.ui import resources

LABELS = {
    "state_dict": "State dict + JSON (zip)",
    "torchscript": "TorchScript",
    "pt2": "torch.export (.pt2)",
    "onnx": "ONNX",
}


def render(net, cfg: SubnetConfig) -> None:
    formats = [f for f in LABELS if f != "onnx" or onnx_available()]
    fmt = st.radio("Format", formats, format_func=LABELS.get, horizontal=True, key="export_fmt")
    if not onnx_available():
        st.caption("ONNX appears here when the optional packages `onnx` and `onnxscript` are installed.")
    key = (cfg.to_compact(), fmt, net.card.sha256)
    ready = st.session_state.get("_export")
    if st.button("Prepare download", key="export_prepare"):
        with st.spinner(f"Exporting and verifying ({LABELS[fmt]})…"):
            try:
                sub, _ = resources.session_subnet(cfg)
                st.session_state["_export"] = (key, export_bytes(sub, net.card, fmt))
            except ExportError as exc:
                st.error(str(exc))
        ready = st.session_state.get("_export")
    if ready and ready[0] == key:
        name, data, mime = ready[1]
        st.download_button(f"Download {name} ({len(data) / 1e6:.1f} MB)", data, file_name=name, mime=mime, key="export_dl")
        st.caption("Re-loaded and checked against the live subnet (max abs difference ≤ 1e-4) before offering it.")
