"""Shared, read-only resources of the app (cached once per server) and per-session subnet caches.

The supernet and predictors are loaded once (``st.cache_resource``) and never mutated:
every session extracts its own subnets, kept in a small per-session LRU cache.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import streamlit as st

from app.space import SubnetConfig
from app.supernet import OFASupernet

SESSION_SUBNETS = 6  # extracted subnets kept per session
ENV_SUPERNET = "OFA_EXPLORER_SUPERNET"


def supernet_path() -> str | None:
    """``--supernet PATH`` after ``streamlit run streamlit_app.py --``, else $OFA_EXPLORER_SUPERNET."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--supernet")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.supernet or os.environ.get(ENV_SUPERNET) or None


@st.cache_resource(show_spinner="Loading the supernet…")
def _load(path: str | None) -> tuple[OFASupernet | None, str | None]:
    from app.weights import SupernetLoadError, load_supernet

    try:
        net = load_supernet(path)
    except (SupernetLoadError, OSError) as exc:
        return None, str(exc)
    _warm_up(net)
    return net, None


def _warm_up(net: OFASupernet) -> None:
    """Build the predictors' lookup arrays once at start-up, so the first slider move is as fast as the rest."""
    from app.predictors import predict

    predict(SubnetConfig.largest(), "note10", net.card)
    from app.open_world import decision_score, load_gate

    if decision_score(net.card) == "gate":
        load_gate(tuple(net.card.class_ids))  # ~0.3 s once, not on the first upload


class _StatisticsPrefetcher:
    """One background thread that re-estimates the BN statistics of the config a page shows
    (latest request wins), so that classifying it later finds them in the process-wide cache."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._next: tuple[OFASupernet, SubnetConfig] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        atexit.register(self.stop)  # a daemon thread killed inside torch at exit would abort the process

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the re-estimation in progress (if any) and end the thread."""
        with self._cv:
            self._stopping = True
            self._next = None
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def request(self, net: OFASupernet, cfg: SubnetConfig) -> None:
        from app.calibrate import has_cached_statistics

        if not net.card.sha256 or has_cached_statistics(net.card, cfg):
            return
        with self._cv:
            if self._stopping:
                return
            self._next = (net, cfg)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bn-prefetch", daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._next is None and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                net, cfg = self._next
                self._next = None
            try:
                net.extract(cfg, calibrate=True)  # fills the statistics cache; the supernet is not touched
            except Exception as exc:  # pragma: no cover - a prefetch failure only costs the time it saves
                print(f"bn-prefetch: {cfg.to_compact()}: {exc}", file=sys.stderr)


_prefetcher = _StatisticsPrefetcher()


def prefetch_statistics(cfg: SubnetConfig) -> None:
    """Re-estimate ``cfg``'s BN statistics in the background (after the page has rendered)."""
    _prefetcher.request(supernet(), cfg)


def supernet() -> OFASupernet:
    """The shared supernet; falls back to the bundled one (with a visible error) if a given path fails."""
    path = supernet_path()
    net, err = _load(path)
    if net is None:
        st.error(f"Could not load the supernet given by --supernet / ${ENV_SUPERNET}: {err}. Using the bundled supernet.")
        net, err = _load(None)
        if net is None:  # pragma: no cover - the bundled file is verified by tests
            st.error(f"The bundled supernet failed to load: {err}")
            st.stop()
    return net


_largest_lock = threading.Lock()


@st.cache_resource(show_spinner="Extracting the largest subnet…", max_entries=4)
def largest_subnet(_net: OFASupernet, sha: str, r: int):
    """The calibrated largest subnet at resolution r, shared read-only by all sessions."""
    return _net.extract(SubnetConfig.largest(r), calibrate=True)


def session_subnet(cfg: SubnetConfig, calibrate: bool = True):
    """The subnet of ``cfg`` for this session (extracted and BN-recalibrated on first use).

    Returns (subnet, seconds spent extracting now — 0.0 when cached).
    """
    net = supernet()
    cache: OrderedDict = st.session_state.setdefault("_subnets", OrderedDict())
    key = (net.card.sha256, net.card.name, cfg.to_compact(), calibrate)
    if key in cache:
        cache.move_to_end(key)
        return cache[key], 0.0
    t = time.perf_counter()
    sub = net.extract(cfg, calibrate=calibrate)
    seconds = time.perf_counter() - t
    cache[key] = sub
    while len(cache) > SESSION_SUBNETS:
        cache.popitem(last=False)
    return sub, seconds


def assets_dir() -> Path:
    from app.paths import ASSETS

    return ASSETS


def sample_images() -> list[Path]:
    """Bundled sample images (assets/samples), sorted by name."""
    folder = assets_dir() / "samples"
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def class_thumbnails(classes: list[str]) -> list[tuple[str, Path]]:
    """(class, first bundled sample of it) for each class that has one (samples are named ``<class>_<n>.jpg``)."""
    samples = {p.stem.rsplit("_", 1)[0].replace("_", " ").lower(): p for p in reversed(sample_images())}
    return [(c, samples[c.lower()]) for c in classes if c.lower() in samples]


@st.cache_resource(show_spinner=False)
def open_world_evaluation() -> dict | None:
    """The bundled open-world measurement (``pretrained/open_world_eval.json``), read once; None if absent."""
    import json

    from app.paths import PRETRAINED

    path = PRETRAINED / "open_world_eval.json"
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
