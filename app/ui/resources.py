"""Shared, read-only resources of the app (cached once per server) and per-session subnet caches.

The supernet and predictors are loaded once (``st.cache_resource``) and never mutated; extracted subnets are
shared read-only by all sessions in one bounded cache (:class:`SharedSubnets`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import streamlit as st

from app.allocator import releasing_freed_memory
from app.space import SubnetConfig
from app.supernet import OFASupernet

SHARED_SUBNETS = 8  # extracted subnets kept for all sessions together (at most 8 x 37 MB)
ENV_SUPERNET = "OFA_EXPLORER_SUPERNET"


def supernet_path() -> str | None:
    """``--supernet PATH`` after ``streamlit run streamlit_app.py --``, else $OFA_EXPLORER_SUPERNET."""
    return _supernet_path(tuple(sys.argv[1:]), os.environ.get(ENV_SUPERNET))


@functools.lru_cache(maxsize=4)
def _supernet_path(argv: tuple[str, ...], env: str | None) -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--supernet")
    args, _ = parser.parse_known_args(list(argv))
    return args.supernet or env or None


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

    QUIET_S = 1.0  # seconds without a new request before a re-estimation starts

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
                # Quiet first: start only once no page has asked for QUIET_S (a busy room keeps asking, and its
                # slider moves must not wait for torch: the prefetch then yields and Classify calibrates on demand).
                while self._next is not None and not self._stopping:
                    asked = self._next
                    self._cv.wait(self.QUIET_S)
                    if self._next is asked:
                        break
                if self._stopping:
                    return
                net, cfg = self._next
                self._next = None
            try:
                with releasing_freed_memory():
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


class SharedSubnets:
    """Extracted (and BN-recalibrated) subnets shared read-only by every session: a bounded LRU, one extraction per
    config at a time (a room that follows the presenter extracts the presenter's subnet once, the rest wait for it).

    A subnet is never changed after extraction (classification, Grad-CAM, export and quantization copy or only read
    it), so sessions can share it; at most ``capacity`` are kept (the largest at 224 px is 37 MB)."""

    def __init__(self, capacity: int = SHARED_SUBNETS) -> None:
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()
        self._inflight: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, net: OFASupernet, cfg: SubnetConfig, calibrate: bool = True):
        """(subnet of ``cfg``, seconds this call spent extracting: 0.0 when it was cached or another caller made it)."""
        key = (net.card.sha256, net.card.name, cfg.to_compact(), calibrate)
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key], 0.0
                pending = self._inflight.get(key)
                if pending is None:
                    self._inflight[key] = done = threading.Event()
                    break
            pending.wait()  # another session is extracting this config; if it failed, try ourselves
        try:
            t = time.perf_counter()
            sub = net.extract(cfg, calibrate=calibrate)
            seconds = time.perf_counter() - t
            with self._lock:
                self._items[key] = sub
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            return sub, seconds
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            done.set()


_shared_subnets = SharedSubnets()


def session_subnet(cfg: SubnetConfig, calibrate: bool = True):
    """The subnet of ``cfg`` (extracted and BN-recalibrated on first use by any session, then shared read-only).

    Returns (subnet, seconds spent extracting now — 0.0 when cached).
    """
    return _shared_subnets.get(supernet(), cfg, calibrate)


CLASSIFICATIONS = 64  # answers kept for all sessions together (top-k, open-world decision, a 7x7 Grad-CAM map each)
_answers: OrderedDict = OrderedDict()
_answers_lock = threading.Lock()


def image_key(image) -> str:
    """A digest of a PIL image's pixels (its mode and size included): the same photo is the same key in any session."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def classified(sub, cfg: SubnetConfig, image, card, key: str | None = None, **options):
    """``app.classify(sub, image, card, **options)``, shared by all sessions (a room classifying the presenter's photo
    with the presenter's subnet runs it once); returns (classification, whether it came from the cache)."""
    from app.classify import classify

    k = (key or image_key(image), card.sha256, card.name, cfg.to_compact(), tuple(sorted(options.items())))
    with _answers_lock:
        if k in _answers:
            _answers.move_to_end(k)
            return _answers[k], True
    result = classify(sub, image, card, **options)
    with _answers_lock:
        _answers[k] = result
        while len(_answers) > CLASSIFICATIONS:
            _answers.popitem(last=False)
    return result, False


@contextlib.contextmanager
def heavy_work(what: str):
    """Run the body in the server's heavy-work queue (:mod:`app.ui.work_queue`), showing the person's place while
    they wait; a full queue gives one line ("busy, try again") and stops the run, keeping the session's state."""
    from app.ui.work_queue import HEAVY, Busy

    box = st.empty()

    def on_wait(ahead: int) -> None:
        box.info(f"Waiting for {what}: {ahead} {'person' if ahead == 1 else 'people'} ahead of you…", icon=":material/hourglass_top:")

    try:
        with HEAVY.slot(on_wait) as waited:
            box.empty()
            yield waited
    except Busy as exc:
        box.empty()
        st.warning(str(exc))
        st.stop()


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
