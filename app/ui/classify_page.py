"""Classify: upload / camera / sample gallery -> top-5 of the current subnet and of the largest."""

from __future__ import annotations

import time

import streamlit as st

from app.classify import classify_onnx
from app.data import ImageError, load_image
from app.space import SubnetConfig
from app.ui import charts, classify_in_browser, resources, state
from app.ui.open_world_view import verdict


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


def _int8(sub, image, card):
    """The int8 version of the current subnet's answer (quantized once per config and process), or None with an error."""
    from app import quantize

    with resources.heavy_work("the int8 quantizer"):
        try:
            with st.spinner("Quantizing the subnet to int8 (once per subnet)…"):
                model = quantize.int8_subnet(sub, card)
        except quantize.QuantizationError as exc:
            st.error(str(exc))
            return None
        return classify_onnx(model, image, card)


def _class_gallery(card) -> None:
    """The classes the supernet knows, a bundled thumbnail each, so a person knows what to try."""
    thumbs = resources.class_thumbnails(card.classes)
    st.markdown(f"**The {card.num_classes} classes this supernet knows** — try one of these, or anything else to see it flagged:")
    if len(thumbs) != card.num_classes:
        st.write(", ".join(card.classes))
        return
    for col, (name, path) in zip(st.columns(len(thumbs)), thumbs):
        col.image(str(path), caption=name, width="stretch")


def _subnet_alone(result) -> None:
    """What each of the subnet's own scores would have said (teaching: a 10-class net knows little of the rest)."""
    ow = result.open_world
    if ow is None:
        return
    from app.open_world import CALIBRATION_QUANTILE, SCORE_MEANING

    rows = [{"score": name, "value": round(ow.scores[name], 4), "accept at ≥": round(ow.thresholds[name], 4),
             "verdict": "one of the classes" if ow.scores[name] >= ow.thresholds[name] else "not one of them",
             "meaning": SCORE_MEANING[name]} for name in ow.scores]
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(f"Intrinsic scores' thresholds: the {CALIBRATION_QUANTILE:.0%} quantile of this subnet's scores on the fast BN path's calibration "
               "images (training images). Measured reliability of each: the chart below.")


def _saliency(image, results, r: int) -> None:
    from app.saliency import eval_crop, overlay

    cols = st.columns(4)
    cols[0].image(eval_crop(image, r), width="stretch", caption=f"what the subnets see ({r}×{r} centre crop)")
    for col, (name, res) in zip(cols[1:], results):
        s = res.saliency
        col.image(overlay(image, s.heatmap, r), width="stretch",
                  caption=f"{name}: where it looked for “{s.label}” (Grad-CAM, +{s.seconds * 1000:.0f} ms here)")
    cols[3].caption("Bright = the regions that raised the class's score most (Grad-CAM, Selvaraju et al. 2017, on the "
                    "last convolutional layer). A map on the background, or on something else than the object, says the "
                    "answer rests on the wrong evidence.")


def _ood_chart() -> None:
    import pandas as pd

    doc = resources.open_world_evaluation()
    if not doc:
        return
    with st.expander("Does a smaller subnet know less about what it doesn't know? (measured)", expanded=True):
        rows = pd.DataFrame(doc["rows"])
        st.altair_chart(charts.ood_auroc_chart(rows), width="stretch")
        own = rows[rows["score"] != "gate"]
        big, small = own[own["macs_M"] >= own["macs_M"].median()], own[own["macs_M"] < own["macs_M"].median()]
        st.markdown(f"**Barely.** The subnets' own scores reach AUROC {own['auroc'].min():.2f}–{own['auroc'].max():.2f} "
                    f"whatever their size (the larger half: {big['auroc'].mean():.3f} on average, the smaller half: "
                    f"{small['auroc'].mean():.3f}); a 10-class network has never seen the rest of the world. The gate, an "
                    "ImageNet network that knows 1,000 classes, separates them almost perfectly.")
        st.caption(f"Each point: one subnet at one resolution, AUROC of telling {doc['in_distribution']} from "
                   f"{doc['out_of_distribution']} (near-OOD: other dogs, fish, trucks, buildings). "
                   "Measured here with `python -m app evaluate --ood`; the gate does not depend on the subnet.")


def render() -> None:
    net = resources.supernet()
    card = net.card
    cfg: SubnetConfig = state.config()
    st.title("Classify")
    st.info(f"The supernet `{card.name}` knows **{card.num_classes} classes**. For any other object it says so "
            "(“Not one of the classes”) and still shows, greyed, what the subnet would have answered.")
    _class_gallery(card)
    top = st.columns([3, 1])
    top[0].caption(f"Current subnet: `{cfg.to_compact()}` (edit it on the Explore page).")
    with top[1]:
        precision = state.precision_picker("prec_pick_classify")
    image, desc = _source_image()
    if image is None:
        _ood_chart()
        return
    left, right = st.columns([1, 2])
    with left:
        st.image(image, caption=f"{desc} ({image.width}×{image.height})", width="stretch")
    with right:
        t0 = time.perf_counter()
        key = resources.image_key(image)
        with resources.heavy_work("the classifier") as waited:
            with st.spinner("Extracting the subnet and re-estimating its BN statistics…"):
                sub, extract_s = resources.session_subnet(cfg)
            result, cached = resources.classified(sub, cfg, image, card, key, explain=True)
            big = resources.largest_subnet(net, card.sha256, cfg.r)
            big_result, _ = resources.classified(big, SubnetConfig.largest(cfg.r), image, card, key, explain=True)
        total = time.perf_counter() - t0
        verdict(result.open_world, card.num_classes, f"**{result.top1}** ({result.probabilities[0]:.0%})")
        demoted = result.in_classes is False
        int8_result = _int8(sub, image, card) if precision == "int8" else None
        cols = st.columns(3 if int8_result is not None else 2)
        with cols[0]:
            st.markdown(f"**Current subnet** at {cfg.r}px{' (fp32)' if int8_result else ''}: {result.headline(card.num_classes)}")
            st.altair_chart(charts.topk_chart(result.labels, result.probabilities, demoted=demoted), width="stretch")
        if int8_result is not None:
            with cols[1]:
                st.markdown(f"**Current subnet, int8**: {int8_result.top1} ({int8_result.probabilities[0]:.0%}) · "
                            f"{int8_result.seconds * 1000:.0f} ms here")
                st.altair_chart(charts.topk_chart(int8_result.labels, int8_result.probabilities, demoted=demoted), width="stretch")
        with cols[-1]:
            st.markdown(f"**Largest subnet** at {cfg.r}px: {big_result.headline(card.num_classes)}")
            st.altair_chart(charts.topk_chart(big_result.labels, big_result.probabilities, demoted=demoted), width="stretch")
        st.caption(
            f"Time here (this machine, measured): extraction + BN re-estimation {extract_s * 1000:.0f} ms"
            f"{' (cached)' if extract_s == 0 else ''}, classification with the open-world decision "
            f"{result.seconds * 1000:.0f} ms{' (when first asked; this answer was cached)' if cached else ''}"
            f"{f', waiting in the queue {waited:.1f} s' if waited >= 0.05 else ''}; page total {total * 1000:.0f} ms."
        )
        classify_in_browser.render(sub=sub, cfg=cfg, image=image, card=card, server_top1=result.top1, precision=precision)
        if st.button("Pin this subnet for Compare", icon=":material/push_pin:", key="pin_classify"):
            st.toast("Pinned." if state.pin(cfg) else "Already pinned (or 6 pins already).")
    st.subheader("What the subnet looked at")
    _saliency(image, [("current subnet", result), ("largest subnet", big_result)], cfg.r)
    with st.expander("What the subnet alone would have said (its own scores)"):
        _subnet_alone(result)
    _ood_chart()
