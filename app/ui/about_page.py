"""Model card / About: the bundled supernet, how it was trained, what was measured; loading OFA checkpoints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from app.training_progress import training_progress
from app.ui import charts, resources

PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"


def render() -> None:
    net = resources.supernet()
    card = net.card
    st.title("Model card")
    if card.placeholder:
        st.error("The bundled supernet is an untrained, random-init PLACEHOLDER. Numbers about its accuracy are meaningless.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Classes", card.num_classes)
    c2.metric("Width multiplier", f"×{card.width_mult}")
    c3.metric("Resolutions", f"{card.resolutions[0]}–{card.resolutions[1]} px")
    st.markdown(f"**Name:** `{card.name}`  \n**Provenance:** {card.provenance}  \n**Weights sha256:** `{card.sha256 or 'n/a'}`")
    st.markdown("**Classes:** " + ", ".join(card.classes[:20]) + (" …" if card.num_classes > 20 else ""))
    card_md = PRETRAINED / "MODEL_CARD.md"
    if card_md.is_file() and not resources.supernet_path():
        progress = training_progress(card)
        if not progress.empty:
            st.subheader("Accuracy after each training run")
            st.altair_chart(charts.training_progress_chart(progress), width="stretch")
            st.caption("Full Imagenette val set, BN re-estimated on 2,000 training images (this machine, measured: "
                       "`scripts/evaluate_supernet.py`); hours: wall-clock of each run on this 2-core CPU, from the "
                       "weights' card. Dashed: the targets.")
        st.markdown(re.sub(r"<!--.*?-->\n?", "", card_md.read_text("utf-8"), flags=re.S))  # markers are for scripts
    history = card.extra.get("history") if isinstance(card.extra, dict) else None
    if history:
        st.subheader("Training log (from the weights' card)")
        st.dataframe(pd.DataFrame(history), hide_index=True, width="stretch")
    if card.extra.get("recipe"):
        with st.expander("Training recipe (JSON)"):
            st.code(json.dumps(card.extra["recipe"], indent=2), language="json")
    st.subheader("Using an official OFA checkpoint (ImageNet, 1,000 classes)")
    st.markdown(
        "If you have mit-han-lab's `ofa_mbv3_d234_e346_k357_w1.0` or `_w1.2` checkpoint file, start the app with\n\n"
        "```bash\nmake run ARGS='--supernet /path/to/ofa_mbv3_d234_e346_k357_w1.2'\n"
        "# or: .venv/bin/python -m streamlit run streamlit_app.py -- --supernet /path/to/checkpoint\n"
        "# or: OFA_EXPLORER_SUPERNET=/path/to/checkpoint make run\n```\n\n"
        "Width and class count are read from the tensor shapes; class names come from torchvision's bundled "
        "ImageNet metadata (no download); the file is read with `torch.load(weights_only=True)`, so no pickled code runs. "
        "BN statistics of extracted subnets are re-estimated on the bundled calibration images (Imagenette training "
        "images, a 10-class subset of ImageNet)."
    )
