"""Per-session view state, mirrored in the URL so a shared link reproduces the view.

The current subnet config is the single source of truth (``st.session_state["cfg"]``);
widgets are views of it. Query parameters: ``cfg`` (compact config string), ``hw``
(hardware target), plus page-specific ones. Bad values in a URL give a visible warning
and fall back to defaults — never an exception.
"""

from __future__ import annotations

from typing import Callable, Sequence

import streamlit as st

from app.space import SubnetConfig

DEFAULT_CONFIG = SubnetConfig.largest(224)
DEFAULT_HARDWARE = "note10"
MAX_PINS = 6


def _warn_once(key: str, message: str) -> None:
    warned = st.session_state.setdefault("_warned", set())
    if key not in warned:
        warned.add(key)
        st.warning(message)


def config() -> SubnetConfig:
    """The current config: session state, else the URL's ``cfg``, else the largest subnet."""
    if "cfg" not in st.session_state:
        cfg = DEFAULT_CONFIG
        raw = st.query_params.get("cfg")
        if raw is not None:
            try:
                cfg = SubnetConfig.parse(raw)
            except ValueError as exc:
                _warn_once("cfg", f"The link's subnet config was not understood ({exc}). Showing the largest subnet instead.")
        st.session_state["cfg"] = cfg
    st.query_params["cfg"] = st.session_state["cfg"].to_compact()
    return st.session_state["cfg"]


def set_config(cfg: SubnetConfig) -> None:
    st.session_state["cfg"] = cfg
    st.query_params["cfg"] = cfg.to_compact()


def hardware(names: Sequence[str]) -> str:
    """The current hardware target name (validated against ``names``)."""
    if "hw" not in st.session_state:
        hw = st.query_params.get("hw", DEFAULT_HARDWARE)
        if hw not in names:
            if "hw" in st.query_params:
                _warn_once("hw", f"Unknown hardware target {hw!r} in the link; using {names[0]!r}.")
            hw = DEFAULT_HARDWARE if DEFAULT_HARDWARE in names else names[0]
        st.session_state["hw"] = hw
    if st.session_state["hw"] not in names:
        st.session_state["hw"] = names[0]
    st.query_params["hw"] = st.session_state["hw"]
    return st.session_state["hw"]


def set_hardware(name: str) -> None:
    st.session_state["hw"] = name
    st.query_params["hw"] = name


PRECISIONS = ("fp32", "int8")


def precision() -> str:
    """The numeric precision the pages show (URL ``prec``): fp32 or int8."""
    return param("prec", "fp32", str, lambda v: v in PRECISIONS)


def precision_picker(key: str) -> str:
    """A horizontal fp32 / int8 choice bound to the URL's ``prec`` (one value for every page)."""
    current = precision()
    st.session_state[key] = current
    st.radio("Precision", PRECISIONS, key=key, horizontal=True, on_change=lambda: set_param("prec", st.session_state[key]),
             help="fp32: the network as trained. int8: static post-training quantization with onnxruntime (weights and "
                  "activations in 8 bits), measured here for accuracy, size and latency on this machine's CPU.")
    return current


def param(name: str, default, parse: Callable[[str], object], valid: Callable[[object], bool] = lambda v: True):
    """A page parameter from session state / URL, validated; bad URL values warn and fall back."""
    key = f"p_{name}"
    if key not in st.session_state:
        value = default
        raw = st.query_params.get(name)
        if raw is not None:
            try:
                v = parse(raw)
                if not valid(v):
                    raise ValueError
                value = v
            except (ValueError, TypeError):
                _warn_once(name, f"Ignoring the link's {name}={raw[:40]!r}: not a valid value.")
        st.session_state[key] = value
    st.query_params[name] = str(st.session_state[key])
    return st.session_state[key]


def set_param(name: str, value) -> None:
    st.session_state[f"p_{name}"] = value
    st.query_params[name] = str(value)


def pins() -> list[SubnetConfig]:
    """Pinned configs for the Compare page (also in the URL as ``pins``)."""
    if "pins" not in st.session_state:
        out: list[SubnetConfig] = []
        raw = st.query_params.get("pins", "")
        for part in [p for p in raw.split(",") if p][:MAX_PINS]:
            try:
                out.append(SubnetConfig.parse(part))
            except ValueError:
                _warn_once("pins", "Some pinned configs in the link were not understood and were dropped.")
        st.session_state["pins"] = out
    _sync_pins()
    return st.session_state["pins"]


def _sync_pins() -> None:
    if st.session_state["pins"]:
        st.query_params["pins"] = ",".join(c.to_compact() for c in st.session_state["pins"])
    elif "pins" in st.query_params:
        del st.query_params["pins"]


def pin(cfg: SubnetConfig) -> bool:
    """Pin ``cfg``; False if already pinned or the list is full."""
    current = pins()
    if cfg in current or len(current) >= MAX_PINS:
        return False
    current.append(cfg)
    _sync_pins()
    return True


def unpin(cfg: SubnetConfig) -> None:
    st.session_state["pins"] = [c for c in pins() if c != cfg]
    _sync_pins()
