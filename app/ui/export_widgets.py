"""Download buttons for the current subnet in every export format."""

from __future__ import annotations

import streamlit as st

from app.export import ExportError, export_bytes
from app.space import SubnetConfig
from app.ui import resources

LABELS = {
    "state_dict": "State dict + JSON (zip)",
    "torchscript": "TorchScript",
    "pt2": "torch.export (.pt2)",
    "onnx": "ONNX",
    "onnx-int8": "ONNX int8",
}


def render(net, cfg: SubnetConfig) -> None:
    fmt = st.radio("Format", list(LABELS), format_func=LABELS.get, horizontal=True, key="export_fmt")
    key = (cfg.to_compact(), fmt, net.card.sha256)
    ready = st.session_state.get("_export")
    if st.button("Prepare download", key="export_prepare"):
        with resources.heavy_work("the exporter"), st.spinner(f"Exporting and verifying ({LABELS[fmt]})…"):
            try:
                sub, _ = resources.session_subnet(cfg)
                st.session_state["_export"] = (key, export_bytes(sub, net.card, fmt))
                st.session_state.pop("_export_error", None)
            except ExportError as exc:
                st.error(str(exc))
        ready = st.session_state.get("_export")
    if ready and ready[0] == key:
        name, data, mime, check = ready[1]
        st.download_button(f"Download {name} ({len(data) / 1e6:.1f} MB)", data, file_name=name, mime=mime, key="export_dl")
        st.caption(f"Verified before offering it: {check}.")
