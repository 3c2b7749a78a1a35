"""Evolutionary search: ours vs the reference ``ofa`` package's EvolutionFinder, in the same run.

    python benchmarks/search_vs_reference.py [--budgets 20,25,30] [--seeds 3]

Both use OFA's ImageNet accuracy predictor (the same weights) and OFA's Note10 latency
lookup tables (the bundled copy), with the tutorial's settings: population 100, 500
generations, parent ratio 0.25, mutation ratio 0.5, mutate probability 0.1. The
reference runs ``ofa.tutorial.evolution_finder.EvolutionFinder`` unchanged; only its
table loading is fed from the bundled file (its own loader downloads).

Run it on an otherwise idle machine: with another process busy on the same cores,
PyTorch's thread pool oversubscribes and both searches slow down many times over.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import time

from common import header, table

import numpy as np
import torch

from app.paths import PRETRAINED


def reference_finder(budget_ms: float):
    from ofa.tutorial.accuracy_predictor import AccuracyPredictor
    from ofa.tutorial.evolution_finder import EvolutionFinder
    from ofa.tutorial.latency_table import LatencyEstimator, LatencyTable
    from safetensors.torch import load_file

    acc = AccuracyPredictor(pretrained=False, device="cpu")
    acc.model.load_state_dict(load_file(str(PRETRAINED / "predictors/ofa_acc_predictor_w1.2.safetensors")))
    acc.model.eval()
    doc = json.loads((PRETRAINED / "latency/note10.json").read_text())
    lat = LatencyTable.__new__(LatencyTable)
    lat.latency_tables = {}
    for r, t in doc["tables"].items():
        est = LatencyEstimator.__new__(LatencyEstimator)
        est.lut = {k: {"mean": v} for k, v in t.items()}
        lat.latency_tables[int(r)] = est
    return EvolutionFinder("note10", budget_ms, lat, acc, mutate_prob=0.1, population_size=100, max_time_budget=500,
                           parent_ratio=0.25, mutation_ratio=0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="20,25,30", help="Note10 latency budgets (ms)")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    from app.search import SearchSettings, search

    search("note10", {"latency": 25}, "imagenet", SearchSettings(generations=5))  # warm caches (tables, predictor)
    rows, speedups, gains = [], [], []
    for budget in [float(b) for b in args.budgets.split(",")]:
        for seed in range(args.seeds):
            t = time.perf_counter()
            ours = search("note10", {"latency": budget}, "imagenet", SearchSettings(population=100, generations=500, seed=seed))
            t_ours = time.perf_counter() - t
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            finder = reference_finder(budget)
            t = time.perf_counter()
            with torch.no_grad(), open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # its tqdm bar
                _, (ref_acc, ref_sample, ref_lat) = finder.run_evolution_search(verbose=False)
            t_ref = time.perf_counter() - t
            ref_acc = 100 * float(ref_acc)
            speedups.append(t_ref / t_ours)
            gains.append(ours.accuracy - ref_acc)
            rows.append([budget, seed, round(ours.accuracy, 2), round(ref_acc, 2), round(ours.metrics["latency_ms"], 2),
                         round(float(ref_lat), 2), round(t_ours, 2), round(t_ref, 2), f"{t_ref / t_ours:.1f}x"])
    print(header("Evolutionary search vs ofa.tutorial EvolutionFinder (Note10 tables, OFA ImageNet predictor)"))
    print(table(["budget ms", "seed", "ours acc %", "ref acc %", "ours lat ms", "ref lat ms", "ours s", "ref s", "speed-up"], rows))
    print(f"\nmedian speed-up {statistics.median(speedups):.1f}x; predicted accuracy ours - reference: "
          f"mean {statistics.mean(gains):+.2f} pp, min {min(gains):+.2f} pp")


if __name__ == "__main__":
    main()
