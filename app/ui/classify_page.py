"""Classify: upload / camera / sample gallery -> top-5 of the current subnet and of the largest."""

from __future__ import annotations

import time

import streamlit as st

from app.classify import classify
from app.data import ImageError, load_image
from app.space import SubnetConfig
from app.ui import charts, resources, state


def _source_image():
    """(PIL image, description) from the chosen source, or (None, None)."""
    samples = resources.sample_images()
    names = [p.name for p in samples]
    source = st.radio("Image source", ("Sample gallery", "Upload", "Camera"), horizontal=True, key="img_source")
    if source == "Upload":
        up = st.file_uploader("An image (JPEG, PNG, WebP, GIF, BMP, TIFF; up to 20 MB)", key="upload")
        if up is None:
            st.info("Choose a file to classify.")
            return None, None
        data = up.getvalue()
        desc = up.name
    elif source == "Camera":
        shot = st.camera_input("Take a photo", key="camera")
        if shot is None:
            return None, None
        data = shot.getvalue()
        desc = "camera photo"
    else:
        if not samples:
            st.warning("No sample images are bundled (assets/samples).")
            return None, None
        default = state.param("sample", names[0], str, lambda v: v in names)
        st.session_state["sample_pick"] = default

        def on_pick() -> None:
            state.set_param("sample", st.session_state["sample_pick"])

        st.selectbox("Sample image (Imagenette validation set)", names, key="sample_pick", on_change=on_pick)
        data = samples[names.index(st.session_state["sample_pick"])].read_bytes()
        desc = st.session_state["sample_pick"]
    try:
        return load_image(data), desc
    except ImageError as exc:
        st.error(f"Cannot classify {desc}: {exc}")
        return None, None


def render() -> None:
    net = resources.supernet()
    card = net.card
    cfg: SubnetConfig = state.config()
    st.title("Classify")
    known = ", ".join(card.classes) if card.num_classes <= 20 else f"the {card.num_classes} ImageNet classes"
    st.info(f"The supernet `{card.name}` knows **{card.num_classes} classes**: {known}. "
            "Any other object is still forced into one of these.")
    st.caption(f"Current subnet: `{cfg.to_compact()}` (edit it on the Explore page).")
    image, desc = _source_image()
    if image is None:
        return
    left, right = st.columns([1, 2])
    with left:
        st.image(image, caption=f"{desc} ({image.width}×{image.height})", width="stretch")
    with right:
        t0 = time.perf_counter()
        with st.spinner("Extracting the subnet and re-estimating its BN statistics…"):
            sub, extract_s = resources.session_subnet(cfg)
        result = classify(sub, image, card.classes, card.mean, card.std)
        big = resources.largest_subnet(net, card.sha256, cfg.r)
        big_result = classify(big, image, card.classes, card.mean, card.std)
        total = time.perf_counter() - t0
        a, b = st.columns(2)
        with a:
            st.markdown(f"**Current subnet** at {cfg.r}px: **{result.top1}** ({result.probabilities[0]:.0%})")
            st.altair_chart(charts.topk_chart(result.labels, result.probabilities), width="stretch")
        with b:
            st.markdown(f"**Largest subnet** at {cfg.r}px: **{big_result.top1}** ({big_result.probabilities[0]:.0%})")
            st.altair_chart(charts.topk_chart(big_result.labels, big_result.probabilities), width="stretch")
        st.caption(
            f"Time here (this machine, measured): extraction + BN re-estimation {extract_s * 1000:.0f} ms"
            f"{' (cached)' if extract_s == 0 else ''}, classification {result.seconds * 1000:.0f} ms; "
            f"page total {total * 1000:.0f} ms."
        )
        if st.button("Pin this subnet for Compare", icon=":material/push_pin:", key="pin_classify"):
            st.toast("Pinned." if state.pin(cfg) else "Already pinned (or 6 pins already).")
