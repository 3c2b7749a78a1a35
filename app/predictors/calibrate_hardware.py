"""Measure a latency lookup table for the machine this runs on (``python -m app calibrate-hardware``).

Every distinct layer of the search space -- stem, first block, each stage block for every
kernel × expand ratio, final expand, pooling, feature mix, classifier -- is timed at
batch 1 in inference mode, inside whole forward passes of the nine uniform depth-4 subnets,
at every tabled resolution, with the same layer keys as OFA's Note10 tables. A network's latency is then the sum of its
layers (:class:`~app.predictors.latency_lut.LatencyTable`). The table is validated against
end-to-end latency of random subnets measured the same way, and the error is stored in
the file, so the app can state it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from app.predictors.latency_lut import LatencyTable, layer_keys
from app.space import EXPAND_CHOICES, KERNEL_CHOICES, MAX_DEPTH, NUM_BLOCKS, RESOLUTION_CHOICES, SubnetConfig
from app.weights import atomic_write_text

Progress = Callable[[int, int, str], None]
# every 16 px; latency between two tabled resolutions is interpolated (LatencyTable)
DEFAULT_RESOLUTIONS: tuple[int, ...] = tuple(range(128, 225, 16))


def time_call(fn: Callable[[], object], min_round_s: float = 0.003, rounds: int = 7, warmup_s: float = 0.03) -> float:
    """Median milliseconds per call of ``fn`` over ``rounds`` rounds of at least ``min_round_s`` each
    (after at least ``warmup_s`` and 3 calls of warm-up: first calls build oneDNN kernels)."""
    t = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - t < warmup_s:
        fn()
        calls += 1
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-6)
    n = max(1, int(min_round_s / once))
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t) / n)
    return 1000.0 * statistics.median(samples)


def layer_times_in_context(sub: nn.Module, r: int, runs: int = 15, warmup: int = 4) -> list[list[float]]:
    """Milliseconds of each layer of ``sub`` -- stem, first block, each of its blocks, final expand,
    pooling, feature mix, classifier -- timed inside whole forward passes at batch 1, one list of
    ``runs`` samples per layer.

    Timing inside the network (not each layer alone) keeps caches as warm or as cold as a real
    forward leaves them; layers timed alone sum to about 40% less than the network on this CPU.
    Pooling is the gap between the final expand and the feature mix."""
    order = [sub.stem, sub.first_block, *sub.blocks, sub.final_expand, sub.feature_mix, sub.classifier]
    starts = [0.0] * len(order)
    ends = [0.0] * len(order)
    samples: list[list[float]] = [[] for _ in order]
    pool: list[float] = []
    clock = time.perf_counter
    hooks = []
    for i, m in enumerate(order):
        hooks.append(m.register_forward_pre_hook(lambda m, a, i=i: starts.__setitem__(i, clock())))
        hooks.append(m.register_forward_hook(lambda m, a, o, i=i: ends.__setitem__(i, clock())))
    x = torch.randn(1, 3, r, r)
    try:
        with torch.inference_mode():
            for run in range(warmup + runs):
                sub(x)
                if run >= warmup:
                    for i in range(len(order)):
                        samples[i].append(1000.0 * (ends[i] - starts[i]))
                    pool.append(1000.0 * (starts[-2] - ends[-3]))  # final expand -> feature mix
    finally:
        for h in hooks:
            h.remove()
    return samples[:-2] + [pool] + samples[-2:]  # ..., final expand, pool, feature mix, classifier


def measure_table(net, r: int, subnets: dict[tuple[int, int], nn.Module], progress: Progress | None = None,
                  done: int = 0, total: int = 0) -> dict[str, float]:
    """Milliseconds per layer key at resolution ``r``: the median of every in-context sample of that key
    (the blocks of one stage after its first share a key, and so do the fixed layers of every subnet);
    ``subnets``: the uniform depth-4 subnet of every (kernel, expand) pair."""
    fixed_keys, block_keys = layer_keys(r, net.card.width_mult, net.card.num_classes)
    samples: dict[str, list[float]] = {}
    for ki, k in enumerate(KERNEL_CHOICES):
        for ei, e in enumerate(EXPAND_CHOICES):
            keys = [fixed_keys[0], fixed_keys[1], *[block_keys[b][ki][ei] for b in range(NUM_BLOCKS)], *fixed_keys[2:]]
            for key, times in zip(keys, layer_times_in_context(subnets[(k, e)], r), strict=True):
                samples.setdefault(key, []).extend(times)
            done += 1
            if progress:
                progress(done, total, f"{r}px k{k} e{e}")
    return {key: statistics.median(times) for key, times in samples.items()}


@torch.inference_mode()
def end_to_end_ms(sub: nn.Module, r: int) -> float:
    x = torch.randn(1, 3, r, r)
    return time_call(lambda: sub(x), min_round_s=0.05, rounds=9)


def measure_random(net, table: LatencyTable, n: int, seed: int, progress: Progress | None = None, what: str = "") -> list[dict]:
    """End-to-end latency of ``n`` random subnets (at tabled resolutions) beside the table's prediction."""
    from app.predictors.encoding import encode

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        r = rng.choice(table.resolutions)
        cfg = SubnetConfig.random(rng, r=r)
        measured = end_to_end_ms(net.extract(cfg), r)
        predicted = float(table.batch(encode([cfg]))[0])
        rows.append({"config": cfg.to_compact(), "measured_ms": round(measured, 3), "table_ms": round(predicted, 3)})
        if progress:
            progress(i + 1, n, what)
    return rows


def fit_correction(rows: list[dict]) -> dict:
    """Least-squares ``measured = scale * sum_of_layers + offset`` (layers timed alone run hotter in cache)."""
    x = np.array([r["table_ms"] for r in rows])
    y = np.array([r["measured_ms"] for r in rows])
    scale, offset = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
    if scale <= 0 or offset < 0:  # a fixed overhead cannot be negative: fit a pure ratio instead
        scale, offset = float(x @ y / (x @ x)), 0.0
    return {"scale": round(float(scale), 5), "offset_ms": round(float(offset), 4), "subnets": len(rows)}


def validate(net, table: LatencyTable, n: int = 30, seed: int = 0, progress: Progress | None = None) -> dict:
    """Table (with its correction) vs measured end-to-end latency of ``n`` random subnets."""
    rows = measure_random(net, table, n, seed, progress, "validating")
    errors = [abs(row["table_ms"] - row["measured_ms"]) / row["measured_ms"] for row in rows]
    return {"subnets": n, "mape_percent": round(100 * float(np.mean(errors)), 2),
            "max_ape_percent": round(100 * float(np.max(errors)), 2), "rows": rows}


def calibrate_hardware(
    net,
    name: str,
    label: str | None = None,
    resolutions: tuple[int, ...] = DEFAULT_RESOLUTIONS,
    validate_subnets: int = 30,
    progress: Progress | None = None,
    fit_subnets: int = 30,
) -> dict:
    """Measure the layer tables (and their validation) for this machine; returns the document to save."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"calibrate-hardware: name must be letters, digits, '-', '_' or '.', got {name!r}")
    bad = [r for r in resolutions if r not in RESOLUTION_CHOICES]
    if bad or not resolutions:
        raise ValueError(f"calibrate-hardware: resolutions must be among 128..224 in steps of 4, got {list(resolutions)}")
    w, c = net.card.width_mult, net.card.num_classes
    subnets = {(k, e): net.extract(SubnetConfig.uniform(k, e, MAX_DEPTH, 224)) for k in KERNEL_CHOICES for e in EXPAND_CHOICES}
    total = len(resolutions) * len(subnets)
    t0 = time.time()
    tables: dict[str, dict[str, float]] = {}
    done = 0
    for r in sorted(resolutions):
        tables[str(r)] = {k: round(v, 5) for k, v in measure_table(net, r, subnets, progress, done, total).items()}
        done += len(subnets)
    table = LatencyTable(name, {int(r): t for r, t in tables.items()}, w, c)
    correction = {"scale": 1.0, "offset_ms": 0.0, "subnets": 0}
    if fit_subnets:  # fitted on its own random subnets (seed 1), never on the validation ones (seed 0)
        correction = fit_correction(measure_random(net, table, fit_subnets, seed=1, progress=progress, what="fitting correction"))
        table = LatencyTable(name, {int(r): t for r, t in tables.items()}, w, c, correction["scale"], correction["offset_ms"])
    doc = {
        "name": name,
        "label": label or f"{name} (CPU, measured)",
        "kind": "measured",
        "date": _dt.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, {platform.system()}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": 1,
        "width_mult": w,
        "num_classes": c,
        "method": ("each layer timed inside whole forward passes of the uniform depth-4 subnets (median of its samples), "
                   "batch 1, torch.inference_mode, fp32; latency = scale * sum of layers + offset, "
                   "the correction fitted on end-to-end latency of other random subnets"),
        "correction": correction,
        "minutes": None,
        "tables": tables,
    }
    if validate_subnets:
        doc["validation"] = validate(net, table, validate_subnets, progress=progress)
    doc["minutes"] = round((time.time() - t0) / 60, 2)
    return doc


def save_table(doc: dict, path: str | Path) -> Path:
    """Write a measured table atomically (a crash mid-write leaves the previous file intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path
