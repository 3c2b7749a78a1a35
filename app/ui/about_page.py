"""Model card / About: the bundled supernet, how it was trained, what was measured; loading OFA checkpoints."""

from __future__ import annotations

import json
import os
import re

import pandas as pd
import streamlit as st

from app.paths import PRETRAINED
from app.training_progress import training_progress
from app.ui import charts, resources



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
        text = re.sub(r"<!--.*?-->\n?", "", card_md.read_text("utf-8"), flags=re.S)  # markers are for scripts
        text = re.sub(r"\A\s*# Model card\b[^\n]*\n", "", text)  # the page's title and Name line already say it
        before, lineage, after = split_lineage(text)
        st.markdown(before)
        if lineage:
            summary, runs, total = parse_lineage(lineage)
            with st.expander("Training lineage", expanded=False):
                if summary:
                    st.markdown(summary)
                if runs:
                    prefix = os.path.commonprefix([r["run"] for r in runs]) if len(runs) > 1 else ""
                    prefix = prefix[: prefix.rfind("-") + 1]  # "imagenette-w1.2-": the runs read v1, v2, ...
                    table = pd.DataFrame([{"run": r["run"][len(prefix):], "phases (wall-clock hours)": r["phases"],
                                           "hours": f"{r['hours']:.2f}", "cumulative": f"{r['cumulative hours']:.2f}"}
                                          for r in runs])
                    st.table(table, hide_index=True, border="horizontal")  # static: long phase lists wrap, no scrolling
                    first = table["run"].iloc[0]
                    st.caption((f"Run {first} is recipe `{prefix}{first}`, and so on; " if prefix else "")
                               + "oldest first, each run continuing the previous one's weights. Wall-clock hours on 2 "
                               "shared CPU cores."
                               + (f" Total {total:.2f} h." if total else ""))
                else:  # a format this page does not know: show the paragraph as written
                    st.markdown(lineage)
        if after.strip():
            st.markdown(after)
    history = card.extra.get("history")
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


LINEAGE_MARK = "Training wall-clock per phase"


def split_lineage(text: str) -> tuple[str, str, str]:
    """``text`` cut around its training-lineage paragraph (the lines written by ``scripts/evaluate_supernet.py``,
    "... Training wall-clock per phase ..., which continued recipe ..."): (before, paragraph, after).
    The paragraph is the run of non-blank lines (not headings, tables or lists) holding the mark; (text, "", "")
    when there is none."""
    lines = text.split("\n")
    hit = next((i for i, line in enumerate(lines) if LINEAGE_MARK in line or "which continued recipe" in line), None)
    if hit is None:
        return text, "", ""

    def prose(line: str) -> bool:
        return bool(line.strip()) and not line.lstrip().startswith(("#", "|", "<!--", "- ", "* ", "```"))

    start, end = hit, hit + 1
    while start > 0 and prose(lines[start - 1]):
        start -= 1
    while end < len(lines) and prose(lines[end]):
        end += 1
    return "\n".join(lines[:start]), " ".join(s.strip() for s in lines[start:end]), "\n".join(lines[end:])


_RUN = re.compile(r"recipe ([^\s():;,]+) \(([^()]*)\)")
_CURRENT = re.compile(r"recipe ([^\s():;,]+): ([^;]*);")
_PHASE = re.compile(r"^(.*\S)\s+(\d+(?:\.\d+)?)\s*h$")


def parse_lineage(paragraph: str) -> tuple[str, list[dict], float | None]:
    """The lineage paragraph as (summary sentence, one row per run oldest first: run, phases, hours, cumulative
    hours; the stated total). The summary is what precedes "Training wall-clock per phase" (e.g. which runs a
    weight average is made of)."""
    cut = paragraph.find(LINEAGE_MARK)
    summary = paragraph[:cut].strip() if cut > 0 else ""
    chain = paragraph[cut:] if cut >= 0 else paragraph
    found = [(m.group(1), m.group(2)) for m in _CURRENT.finditer(chain)] + [(m.group(1), m.group(2)) for m in _RUN.finditer(chain)]
    runs = []
    for name, phases_text in reversed(found):  # written newest first
        phases = []
        for part in phases_text.split(","):
            m = _PHASE.match(part.strip())
            if m:
                phases.append((m.group(1), float(m.group(2))))
        hours = sum(h for _, h in phases)
        runs.append({"run": name, "phases": ", ".join(f"{p} {h:.2f} h" for p, h in phases), "hours": round(hours, 2)})
    total_run = 0.0
    for row in runs:
        total_run += row["hours"]
        row["cumulative hours"] = round(total_run, 2)
    total = re.search(r"Total (\d+(?:\.\d+)?) h", chain)
    return summary, runs, float(total.group(1)) if total else None
