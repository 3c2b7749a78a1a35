"""This device as a hardware target: the viewer's browser times a few probe subnets, the server fits a latency model
(:mod:`app.predictors.device`), and the device joins the hardware picker for this session."""

from __future__ import annotations

import streamlit as st

from app.predictors import device
from app.space import SubnetConfig
from app.ui import state
from app.ui.browser_report import BACKEND_LABELS, browser_family
from app.ui.browser_runtime import BrowserModel, profile_in_browser, runtime_missing

PROBES = 12
SESSION_DEVICES = 3  # device targets listed per session (a re-profile replaces the oldest)
TITLE = "Add this device as a hardware target"


@st.cache_resource(show_spinner="Preparing the probe subnets (once per server)…", max_entries=2)
def probe_models(supernet_sha256: str, n: int = PROBES) -> tuple[tuple[SubnetConfig, tuple[int, ...], BrowserModel], ...]:
    """The probe subnets as weightless ONNX files (tens of KB each): shared, read-only."""
    from app.ui import resources

    net = resources.supernet()
    return tuple((cfg, (1, 3, cfg.r, cfg.r), BrowserModel.of(device.probe_model(net, cfg)))
                 for cfg in device.probe_configs(n))


def session_targets() -> list:
    """This session's profiled devices that the server still holds, newest first."""
    out = []
    for name in reversed(st.session_state.get("_my_devices", [])):
        found = device.DEVICES.get(name)
        if found is not None:
            out.append(found[0])
    return out


def _remember(name: str) -> None:
    mine = [n for n in st.session_state.get("_my_devices", []) if n != name] + [name]
    st.session_state["_my_devices"] = mine[-SESSION_DEVICES:]


def fit_and_register(cfgs, medians_ms, label: str):
    """Fit this device's model on its probes and make it a hardware target; returns the target."""
    model = device.DeviceLatencyModel.fit(cfgs, medians_ms, label=label, backend=BACKEND_LABELS["wasm"])
    target = device.DEVICES.add(model)
    _remember(target.name)
    return target, model


def render() -> None:
    """The panel on Explore: explain, profile on request with a progress bar, then pick the device."""
    with st.expander(TITLE, expanded=bool(st.session_state.get("_profiling"))):
        st.markdown("Your browser times a few subnets with onnxruntime-web (WASM, 1 thread) and this server fits a "
                    "latency model for your device from them; your device then appears in the hardware picker, with "
                    "its curve on the chart, for this session. It downloads the runtime (about 14 MB, once) and "
                    f"{PROBES} tiny subnets (weights are generated in the browser), and takes 10–40 s. Only the "
                    "latencies and your browser's family are kept, in memory.")
        missing = runtime_missing()
        if missing:
            st.info(missing)
            return
        for target in session_targets()[:1]:
            st.success(f"{target.label} is a hardware target for this session. {target.source}.")
        if not st.session_state.get("_profiling"):
            if st.button("Profile this device", icon=":material/speed:", key="profile_device"):
                st.session_state["_profiling"] = True
                st.rerun()
            return
        from app.ui import resources

        probes = probe_models(resources.supernet().card.sha256)
        state_ = profile_in_browser(probes=[(shape, model) for _, shape, model in probes], key="device_profile")
        if state_.pending:
            st.caption("Profiling in your browser — keep this tab open.")
            return
        st.session_state["_profiling"] = False
        if state_.problem:
            st.error(state_.problem)
            return
        label = browser_family(st.context.headers.get("User-Agent"))
        try:
            target, _ = fit_and_register([c for c, _, _ in probes], state_.profile.medians_ms, label)
        except device.DeviceFitError as exc:
            st.error(str(exc))
            return
        state.set_hardware(target.name)
        st.rerun()
