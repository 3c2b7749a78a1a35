"""Compare: pinned subnets side by side — predicted metrics and answers on the same image."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.data import ImageError, load_image
from app.ui import metrics, resources, state
from app.ui.open_world_view import verdict


def render() -> None:
    net = resources.supernet()
    card = net.card
    st.title("Compare pinned subnets")
    pinned = state.pins()
    cfg = state.config()
    c1, c2 = st.columns([3, 1])
    c1.caption(f"Current subnet: `{cfg.to_compact()}`. Pin subnets from Explore, Classify or Specialise (up to {state.MAX_PINS}); "
               "the pins live in the URL, so a shared link shows the same comparison.")
    if c2.button("Pin the current subnet", icon=":material/push_pin:", width="stretch"):
        st.toast("Pinned." if state.pin(cfg) else "Already pinned (or the list is full).")
        pinned = state.pins()
    if not pinned:
        st.info("Nothing pinned yet.")
        return
    names = [t.name for t in metrics.targets()]
    hw = state.hardware(names)
    st.markdown(f"Hardware target: **{hw}** (change it on Explore).")
    rows = [metrics.summary_row(c, hw, card) for c in pinned]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(metrics.summary_sources(hw))
    for c in list(pinned):
        cols = st.columns([5, 1, 1])
        cols[0].code(c.to_compact(), language=None)
        if cols[1].button("Load", key=f"load_{c.to_compact()}"):
            state.set_config(c)
            st.toast("Loaded into Explore.")
        if cols[2].button("Unpin", key=f"unpin_{c.to_compact()}"):
            state.unpin(c)
            st.rerun()
    st.subheader("Answers on the same image")
    samples = resources.sample_images()
    up = st.file_uploader("Upload an image, or use the sample below", key="compare_upload")
    try:
        if up is not None:
            image, desc = load_image(up.getvalue()), up.name
        elif samples:
            names = [p.name for p in samples]
            pick = st.selectbox("Sample image", names, key="compare_sample")
            image, desc = load_image(samples[names.index(pick)]), pick
        else:
            st.info("No sample images are bundled.")
            return
    except ImageError as exc:
        st.error(f"Cannot classify this file: {exc}")
        return
    st.image(image, caption=desc, width=224)
    key = resources.image_key(image)
    with resources.heavy_work("the classifier"), st.spinner("Extracting and classifying…"):
        results = [(c, resources.classified(resources.session_subnet(c)[0], c, image, card, key, topk=3)[0]) for c in pinned]
    verdict(results[0][1].open_world, card.num_classes, bars="The greyed answers below")  # the gate's: the same for every pin
    cols = st.columns(len(pinned))
    for col, (c, res) in zip(cols, results):
        with col:
            if res.in_classes is False:
                st.markdown(f":gray[closest: {res.top1} ({res.probabilities[0]:.0%})]")
            else:
                st.markdown(f"**{res.top1}** ({res.probabilities[0]:.0%})")
            st.caption(f"`{c.to_compact()[:14]}…` · {res.seconds * 1000:.0f} ms here")
            for label, p in zip(res.labels[1:], res.probabilities[1:]):
                st.caption(f"{label}: {p:.0%}")
