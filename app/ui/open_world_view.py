"""The open-world verdict as the Classify and Compare pages show it: one clear line, the score with its meaning,
and the gate's own ImageNet guess, labelled as the gate's."""

from __future__ import annotations

import streamlit as st

from app.open_world import OpenWorldDecision


def verdict(ow: OpenWorldDecision | None, num_classes: int, answer: str | None = None, bars: str = "The bars below") -> None:
    """A green line with ``answer`` when the image is one of the classes (nothing when ``answer`` is None), an amber
    "Not one of the classes" otherwise; then the deciding score, its threshold and meaning, and the gate's guess."""
    if ow is None:
        return
    if ow.in_classes:
        if answer is None:
            return
        st.success(f"{ow.message(num_classes)} Answer: {answer}.", icon=":material/check_circle:")
    else:
        st.warning(f"**{ow.message(num_classes)}** {bars} are what the subnet is forced to say; do not read them as an "
                   "answer.", icon=":material/help:")
    caption = (f"Decided by the {ow.score_name} score {ow.score:.4f} (accept at ≥ {ow.threshold:.4g}): {ow.meaning}. "
               "Threshold chosen on training images only (model card: open-world table).")
    if ow.gate_guess:
        caption += (f" The gate's own ImageNet guess (EfficientNet-Lite0, not the subnet): "
                    f"**{ow.gate_guess}** ({ow.gate_guess_probability:.0%}).")
    st.caption(caption)
