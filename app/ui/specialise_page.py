"""Specialise: pick hardware and a budget; OFA's evolutionary search finds the most accurate subnet under it."""

from __future__ import annotations

import streamlit as st

from app.predictors import device
from app.search import SearchSettings, search
from app.ui import charts, metrics, resources, state

BUDGET_UNITS = {"latency": "ms", "energy": "mJ", "macs": "M MACs"}
DEFAULTS = {"latency": 25.0, "energy": 15.0, "macs": 400.0}


def render() -> None:
    net = resources.supernet()
    card = net.card
    st.title("Specialise for a device")
    st.caption("OFA's evolutionary search (population 100, parents 25%, mutation 50%, mutate probability 0.1) over the "
               "batched predictors: the most accurate subnet within your budget, in a few seconds on a laptop CPU.")
    targets = metrics.targets()
    names = [t.name for t in targets]
    hw = state.hardware(names)
    labels = {t.name: t.label for t in targets}
    st.session_state["sp_hw"] = hw
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Hardware", names, key="sp_hw", format_func=labels.get,
                 on_change=lambda: state.set_hardware(st.session_state["sp_hw"]))
    kind = state.param("budget", "latency", str, lambda v: v in BUDGET_UNITS)
    st.session_state["sp_kind"] = kind
    c2.selectbox("Budget on", list(BUDGET_UNITS), key="sp_kind", on_change=lambda: state.set_param("budget", st.session_state["sp_kind"]))
    kind = st.session_state["sp_kind"]
    limit = c3.number_input(f"Maximum ({BUDGET_UNITS[kind]})", min_value=0.1, value=DEFAULTS[kind], key=f"sp_limit_{kind}")
    acc_choice = st.radio("Maximise", ("imagenet", "supernet"), horizontal=True, key="sp_acc",
                          format_func=lambda a: "OFA ImageNet predictor" if a == "imagenet" else "bundled supernet's predictor")
    gens = st.slider("Generations", 50, 500, 500, step=50, key="sp_gens")
    if st.button("Search", type="primary", key="sp_go"):
        bar = st.progress(0.0, text="Searching…")

        def progress(gen: int, best: float) -> None:
            if gen % 25 == 0:
                bar.progress(gen / gens, text=f"generation {gen}/{gens}: best predicted {best:.2f}%")

        try:
            res = search(hw, {kind: float(limit)}, acc_choice, SearchSettings(generations=gens, seed=0), supernet_card=card,
                         progress=progress)
        except ValueError as exc:
            bar.empty()
            st.error(str(exc))
            return
        bar.empty()
        st.session_state["_search_result"] = res.config
        st.session_state["_search_info"] = res
        st.session_state["_search_accuracy"] = acc_choice
        st.session_state["_search_hw"] = hw
    res = st.session_state.get("_search_info")
    if res is None:
        return
    st.success(f"Found `{res.config.to_compact()}` in {res.seconds:.2f} s ({res.evaluated:,} candidates scored): "
               f"predicted {res.accuracy:.2f}% top-1.")
    if st.session_state.get("_search_accuracy") == "supernet":
        st.caption("A search lands where the predictor is most optimistic: under Note10 ≤ 20 / 25 / 30 ms the subnets it found "
                   "measured 1.2–1.6 points below their prediction (this project, measured on the v2 weights; README). Load the result into "
                   "Explore and use *Measure accuracy* for its measured top-1.")
    m = res.metrics
    cols = st.columns(4)
    cols[0].metric("Latency", "n/a" if m.get("latency_ms") != m.get("latency_ms") else f"{m['latency_ms']:.1f} ms")
    cols[1].metric("Energy", f"{m['energy_mj']:.2f} mJ")
    cols[2].metric("MACs", f"{m['macs'] / 1e6:.0f} M")
    cols[3].metric("Params", f"{m['params'] / 1e6:.2f} M")
    if device.is_device(st.session_state.get("_search_hw", "")) and st.session_state["_search_hw"] == hw:
        _check_on_this_device(res.config, m.get("latency_ms"), card)
    st.altair_chart(charts.history_chart(res.history), width="stretch")
    b1, b2 = st.columns(2)
    if b1.button("Load into Explore", key="sp_load"):
        state.set_config(res.config)
        st.switch_page("pages/explore.py")
    if b2.button("Pin for Compare", key="sp_pin"):
        st.toast("Pinned." if state.pin(res.config) else "Already pinned (or the list is full).")
    st.vega_lite_chart(spec=charts.architecture_spec(res.config, card.width_mult), width="stretch")
    frame, x_title, y_title = metrics.tradeoff_points(state.config(), hw, metrics.ACCURACY_AXES[1 if acc_choice == "imagenet" else 0], state.pins())
    if not frame.empty:
        st.vega_lite_chart(spec=charts.tradeoff_spec(frame, x_title, y_title), width="stretch")
        st.caption("Green: the search result; red cross: the subnet currently in Explore.")


def _check_on_this_device(cfg, predicted_ms, card) -> None:
    """Run the found subnet in the viewer's browser (as a weightless probe: same work, tiny file) and show the
    latency measured there beside the one predicted for this device."""
    import numpy as np

    from app.ui.browser_runtime import BrowserModel, run_in_browser

    models = st.session_state.setdefault("_probe_models", {})
    key = cfg.to_compact()
    if key not in models:
        with st.spinner("Preparing the found subnet for your browser…"):
            models.clear()  # one per session
            models[key] = BrowserModel.of(device.probe_model(resources.supernet(), cfg))
    run = run_in_browser(model=models[key], inputs=np.zeros((1, 3, cfg.r, cfg.r), np.float32),
                         output_shape=(1, card.num_classes), key="sp_device_check")
    if run.problem:
        st.error(run.problem)
    elif run.pending:
        st.caption("Timing the found subnet in your browser…")
    else:
        err = (predicted_ms - run.run.latency_ms) / run.run.latency_ms * 100
        st.metric("On this device: measured in your browser", f"{run.run.latency_ms:.1f} ms",
                  delta=f"predicted {predicted_ms:.1f} ms ({err:+.0f}%)", delta_color="off")
        st.caption(f"{run.run.source}: median of {len(run.run.latencies_ms)} runs of the found subnet, against the "
                   "latency this device's model predicted for it.")
