"""Shared objects under concurrent use, and writes that survive a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import app
from app.classify import classify
from app.data import load_image
from app.weights import atomic_write_bytes, placeholder_supernet

ROOT = Path(__file__).resolve().parent.parent


def test_threads_get_exactly_the_serial_results():
    net = placeholder_supernet(1.2, seed=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    image = load_image(ROOT / "assets" / "samples" / "church_1.jpg")
    cfgs = [app.SubnetConfig.random(s) for s in range(3)]  # 3 serial + 6 concurrent extract-and-classify jobs (4 threads)

    def work(cfg):
        sub = net.extract(cfg, calibrate=True)
        x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(cfg.r))
        with torch.no_grad():
            logits = sub(x)
        res = classify(sub, image, net.card)
        return logits, res.indices, res.probabilities

    serial = [work(c) for c in cfgs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(work, cfgs + cfgs))
    for (l1, i1, p1), (l2, i2, p2) in zip(serial + serial, parallel):
        assert torch.equal(l1, l2)
        assert i1 == i2 and p1 == p2
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_atomic_write_survives_a_killed_writer(tmp_path):
    target = tmp_path / "table.json"
    atomic_write_bytes(target, b'{"version": 1}')
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import app.weights as w
        import os
        real_write = os.fdopen
        def slow_fdopen(fd, mode):
            f = real_write(fd, mode)
            orig = f.write
            def write(data):
                orig(data[:10]); f.flush(); print("writing", flush=True); time.sleep(30); orig(data[10:])
            f.write = write
            return f
        w.os.fdopen = slow_fdopen
        w.atomic_write_bytes({str(target)!r}, b'{{"version": 2, "padding": "' + b'x' * 100000 + b'"}}')
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b'{"version": 1}'
    leftovers = [p for p in tmp_path.iterdir() if p.name != "table.json"]
    # the half-written temporary file is never mistaken for the target
    assert all(p.name.startswith(".table.json.") for p in leftovers)
    atomic_write_bytes(target, b'{"version": 3}')
    assert target.read_bytes() == b'{"version": 3}'


def test_cached_statistics_equal_a_fresh_reestimation():
    """A config seen before gets its BN statistics from the process-wide cache: identical
    outputs, no recomputation, and the shared supernet stays untouched."""
    import torch

    from app.calibrate import cached_statistics, clear_statistics_cache

    net = app.load_supernet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = app.SubnetConfig.random(5, r=128)
    clear_statistics_cache()
    fresh = net.extract(cfg, calibrate=True)
    assert cached_statistics() == 1
    again = net.extract(cfg, calibrate=True)
    assert cached_statistics() == 1
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(fresh(x), again(x))
        # and they differ from the statistics taken over from the supernet (they were re-estimated)
        assert not torch.equal(fresh(x), net.extract(cfg)(x))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    # a config differing only in blocks skipped by depth is the same network: served from the cache
    same = app.SubnetConfig.from_dict({**cfg.to_dict(), "ks": [7 if i % 4 == 3 and cfg.d[i // 4] < 4 else k
                                                              for i, k in enumerate(cfg.ks)]})
    assert same == cfg
    net.extract(same, calibrate=True)
    assert cached_statistics() == 1


def test_prefetcher_fills_the_statistics_cache_in_the_background():
    """The Explore page asks for the shown config's BN statistics in the background (latest request
    wins); afterwards extraction with calibration is served from the cache."""
    from app.calibrate import clear_statistics_cache, has_cached_statistics
    from app.ui.resources import _StatisticsPrefetcher

    net = app.load_supernet()
    clear_statistics_cache()
    pre = _StatisticsPrefetcher()
    cfgs = [app.SubnetConfig.random(s, r=128) for s in (21, 22)]
    for cfg in cfgs:
        pre.request(net, cfg)
    deadline = time.time() + 60
    while not has_cached_statistics(net.card, cfgs[-1]) and time.time() < deadline:
        time.sleep(0.05)
    assert has_cached_statistics(net.card, cfgs[-1])
    pre.stop()
    assert not pre._thread.is_alive()
    pre.request(net, app.SubnetConfig.random(23, r=128))  # after stop: ignored, no new thread
    assert not pre._thread.is_alive()


def test_prefetcher_waits_for_a_quiet_moment():
    """A room that keeps moving sliders never waits for torch: no re-estimation starts while requests keep coming
    faster than QUIET_S; once they stop, the latest config is fetched and none of the ones moved past."""
    from app.calibrate import clear_statistics_cache, has_cached_statistics
    from app.ui.resources import _StatisticsPrefetcher

    net = app.load_supernet()
    clear_statistics_cache()
    pre = _StatisticsPrefetcher()
    pre.QUIET_S = 0.4
    cfgs = [app.SubnetConfig.random(s, r=128) for s in range(31, 41)]
    try:
        for cfg in cfgs:
            pre.request(net, cfg)
            time.sleep(0.1)
        assert not any(has_cached_statistics(net.card, c) for c in cfgs)  # busy: nothing started
        deadline = time.time() + 60
        while not has_cached_statistics(net.card, cfgs[-1]) and time.time() < deadline:
            time.sleep(0.05)
        assert has_cached_statistics(net.card, cfgs[-1])
        assert not any(has_cached_statistics(net.card, c) for c in cfgs[:-1])
    finally:
        pre.stop()


def test_shared_subnets_are_extracted_once_per_config_and_bounded():
    """Sessions share extracted subnets: 8 threads asking for one config extract it once and get the same object;
    the cache keeps at most its capacity; a failed extraction leaves nothing behind and the next caller retries."""
    import threading
    from types import SimpleNamespace

    from app.ui.resources import SharedSubnets

    calls: list[str] = []
    lock = threading.Lock()

    class Net:
        card = SimpleNamespace(sha256="abc", name="fake")
        fail = False

        def extract(self, cfg, calibrate=True):
            with lock:
                calls.append(cfg.to_compact())
            time.sleep(0.2)
            if self.fail:
                raise RuntimeError("boom")
            return object()

    net, shared = Net(), SharedSubnets(capacity=3)
    cfg = app.SubnetConfig.smallest()
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(shared.get(net, cfg))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [cfg.to_compact()]
    assert len({id(sub) for sub, _ in got}) == 1 and sum(s > 0 for _, s in got) == 1  # one paid, seven waited
    for seed in range(5):
        shared.get(net, app.SubnetConfig.random(seed, r=128))
    assert len(shared) == 3
    net.fail = True
    other = app.SubnetConfig.random(99, r=160)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            shared.get(net, other)
    assert calls.count(other.to_compact()) == 2 and len(shared) == 3
