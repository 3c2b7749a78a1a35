"""Evolutionary search (as in OFA's ``EvolutionFinder``) and Pareto sweeps, vectorised over numpy.

The population lives in integer arrays (kernel, expand, depth, resolution), every
generation is scored with one call of the batched predictors, and constraints
(latency / energy / MACs / params budgets on a hardware target) are enforced on every
candidate: the returned subnet always meets them.
"""

from __future__ import annotations

import dataclasses

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from app.predictors.hardware import hardware_target
from app.predictors.encoding import ConfigArrays, from_values
from app.space import DEPTH_CHOICES, EXPAND_CHOICES, KERNEL_CHOICES, NUM_BLOCKS, NUM_STAGES, RESOLUTION_CHOICES, SubnetConfig

BUDGETS = {"latency": "latency_ms", "energy": "energy_mj", "macs": "macs", "params": "params"}
ACCURACIES = {
    "supernet": "accuracy_supernet",
    "imagenet": "accuracy_imagenet_holdout",
    "imagenet_val": "accuracy_imagenet_val",
}

# batched scorer: (configs, metric keys) -> {key: array}
Scorer = Callable[[ConfigArrays, list[str]], dict[str, np.ndarray]]


@dataclass
class SearchResult:
    config: SubnetConfig
    accuracy: float
    metrics: dict[str, float]
    history: list[float] = field(default_factory=list)  # best feasible accuracy per generation
    seconds: float = 0.0
    evaluated: int = 0

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "compact": self.config.to_compact(), "accuracy": self.accuracy,
                "metrics": self.metrics, "seconds": self.seconds, "evaluated": self.evaluated,
                "generations": len(self.history)}


@dataclass
class _Pop:
    ks: np.ndarray
    e: np.ndarray
    d: np.ndarray
    r: np.ndarray

    def take(self, idx: np.ndarray) -> "_Pop":
        return _Pop(self.ks[idx], self.e[idx], self.d[idx], self.r[idx])

    def __len__(self) -> int:
        return len(self.r)

    @staticmethod
    def cat(pops: Sequence["_Pop"]) -> "_Pop":
        return _Pop(*(np.concatenate([getattr(p, f) for p in pops]) for f in ("ks", "e", "d", "r")))


class _Space:
    def __init__(self, resolutions: Sequence[int], rng: np.random.Generator) -> None:
        self.k = np.array(KERNEL_CHOICES)
        self.e = np.array(EXPAND_CHOICES)
        self.d = np.array(DEPTH_CHOICES)
        self.r = np.array(sorted(resolutions))
        self.rng = rng

    def random(self, n: int) -> _Pop:
        g = self.rng
        return _Pop(self.k[g.integers(0, len(self.k), (n, NUM_BLOCKS))], self.e[g.integers(0, len(self.e), (n, NUM_BLOCKS))],
                    self.d[g.integers(0, len(self.d), (n, NUM_STAGES))], self.r[g.integers(0, len(self.r), n)])

    def mutate(self, p: _Pop, prob: float) -> _Pop:
        """OFA's mutation: with probability ``prob`` each block's kernel and expand ratio are redrawn
        together, and so is each stage's depth and the resolution (all uniformly).

        Redrawing kernel and expand ratio independently (twice as many changes per mutant) found
        0.1 pp less on average under Note10 20 ms (6 seeds; ``benchmarks/search_vs_reference.py``)."""
        fresh = self.random(len(p))
        u = self.rng.random((len(p), NUM_BLOCKS + NUM_STAGES + 1)) < prob  # one draw per block, stage, resolution
        blocks = u[:, :NUM_BLOCKS]
        d = np.where(u[:, NUM_BLOCKS:-1], fresh.d, p.d)
        return _Pop(np.where(blocks, fresh.ks, p.ks), np.where(blocks, fresh.e, p.e), d, np.where(u[:, -1], fresh.r, p.r))

    def crossover(self, a: _Pop, b: _Pop) -> _Pop:
        g = self.rng
        pick = lambda x, y: np.where(g.random(x.shape) < 0.5, x, y)  # noqa: E731
        return _Pop(pick(a.ks, b.ks), pick(a.e, b.e), pick(a.d, b.d), pick(a.r, b.r))


def predictor_scorer(hardware: str, supernet_sha256: str | None = None, width_mult: float = 1.2, num_classes: int = 1000) -> Scorer:
    """The project's batched predictors on ``hardware`` as a :data:`Scorer` (one scorer per key set, cached)."""
    from app.predictors.hardware import batch_scorer

    cache: dict[tuple[str, ...], Callable] = {}

    def score(a: ConfigArrays, keys: list[str]) -> dict[str, np.ndarray]:
        k = tuple(sorted(keys))
        if k not in cache:
            cache[k] = batch_scorer(hardware, k, supernet_sha256, width_mult, num_classes)
        return cache[k](a)

    return score


def _within_budgets(pop: _Pop, scorer: Scorer, budgets: dict[str, float]) -> np.ndarray:
    """Which candidates meet every budget (NaN, e.g. outside a latency table's range, does not)."""
    ok = np.ones(len(pop), dtype=bool)
    if budgets:
        m = scorer(from_values(pop.ks, pop.e, pop.d, pop.r), list(budgets))
        for key, limit in budgets.items():
            v = np.asarray(m[key], dtype=np.float64)
            ok &= np.isfinite(v) & (v <= limit)
    return ok


def _feasible(space: _Space, make: Callable[[int], _Pop], n: int, scorer: Scorer, acc_key: str, budgets: dict, tries: int = 50):
    """n feasible candidates from ``make`` (rejection sampling), with their scores; (None, None, evaluated) if none."""
    pops, accs, evaluated = _feasible_groups([make], [n], scorer, acc_key, budgets, tries)
    if not pops:
        return None, None, evaluated
    return pops[0], accs[0], evaluated


def _cached_accuracy(pop: _Pop, scorer: Scorer, acc_key: str, cache: dict[bytes, float]) -> np.ndarray:
    """Predicted accuracy with a memo: late generations mostly revisit subnets (about 70% under Note10 25 ms).
    The key ignores choices in blocks skipped by depth, which do not change the network."""
    a = from_values(pop.ks, pop.e, pop.d, pop.r)
    act = a.active.astype(np.int16)
    rows = np.concatenate([pop.ks * act, pop.e * act, pop.d, pop.r[:, None]], axis=1).astype(np.int16)
    keys = [row.tobytes() for row in rows]
    missing = [i for i, k in enumerate(keys) if k not in cache]
    if missing:
        idx = np.array(missing)
        vals = scorer(from_values(pop.ks[idx], pop.e[idx], pop.d[idx], pop.r[idx]), [acc_key])[acc_key]
        for i, v in zip(missing, np.asarray(vals, dtype=np.float64)):
            cache[keys[i]] = float(v)
    return np.array([cache[k] for k in keys], dtype=np.float64)


def _feasible_groups(makers: Sequence[Callable[[int], _Pop]], ns: Sequence[int], scorer: Scorer, acc_key: str,
                     budgets: dict, tries: int = 50, cache: dict[bytes, float] | None = None) -> tuple[list[_Pop], list[np.ndarray], int]:
    """Rejection sampling for several groups at once (e.g. mutants and children): up to ``ns[i]``
    feasible candidates from ``makers[i]``, every try scored in one batch."""
    got: list[list[_Pop]] = [[] for _ in ns]
    accs: list[list[np.ndarray]] = [[] for _ in ns]
    have = [0] * len(ns)
    evaluated = 0
    for _ in range(tries):
        want = [n - h for n, h in zip(ns, have)]
        if all(w <= 0 for w in want):
            break
        cands = [make(int(1.25 * w) + 4) if w > 0 else None for make, w in zip(makers, want)]
        batch = _Pop.cat([c for c in cands if c is not None])
        evaluated += len(batch)
        ok = _within_budgets(batch, scorer, budgets)
        # the accuracy predictor (the costly part) runs only on the feasible candidates each group keeps
        keep, start = [], 0
        for i, c in enumerate(cands):
            if c is None:
                continue
            keep.append((i, c, np.flatnonzero(ok[start : start + len(c)])[: want[i]]))
            start += len(c)
        chosen = _Pop.cat([c.take(idx) for _, c, idx in keep if len(idx)]) if any(len(k[2]) for k in keep) else None
        if chosen is None:
            continue
        acc = _cached_accuracy(chosen, scorer, acc_key, cache) if cache is not None else np.asarray(
            scorer(from_values(chosen.ks, chosen.e, chosen.d, chosen.r), [acc_key])[acc_key], dtype=np.float64)
        start = 0
        for i, c, idx in keep:
            if not len(idx):
                continue
            a = acc[start : start + len(idx)]
            start += len(idx)
            good = np.isfinite(a)
            if good.any():
                got[i].append(c.take(idx[good]))
                accs[i].append(a[good])
                have[i] += int(good.sum())
    pops = [_Pop.cat(g) for g in got if g]
    return pops, [np.concatenate(a) for a in accs if a], evaluated


def _initial_population(space: _Space, population: int, scorer: Scorer, acc_key: str, limits: dict,
                        budgets: dict) -> tuple[_Pop, np.ndarray, int]:
    """``population`` feasible random subnets (grown by mutation from the smallest one under tight budgets)."""
    rng = space.rng
    pop, acc, evaluated = _feasible(space, space.random, population, scorer, acc_key, limits, tries=20)
    if pop is None:  # tight budget: start from the smallest subnet and grow by mutation
        seed_pop = _smallest(space)
        pop, acc, ev = _feasible(space, lambda n: seed_pop.take(np.zeros(n, dtype=int)), 1, scorer, acc_key, limits, tries=1)
        evaluated += ev
    for _ in range(50):  # fill up by mutating the feasible subnets found so far
        if pop is None or len(pop) >= population:
            break
        base = pop
        more, more_acc, ev = _feasible(space, lambda n: space.mutate(base.take(rng.integers(0, len(base), n)), 0.3),
                                       population - len(pop), scorer, acc_key, limits, tries=5)
        evaluated += ev
        if more is not None:
            pop, acc = _Pop.cat([pop, more]), np.concatenate([acc, more_acc])
    if pop is None or len(pop) < population:
        smallest = _smallest(space)
        m = scorer(from_values(smallest.ks, smallest.e, smallest.d, smallest.r), list(limits))
        floor = ", ".join(f"{k} {float(m[BUDGETS[k]][0]) / (1e6 if k in ('macs', 'params') else 1):.4g}" for k in budgets)
        raise ValueError(f"budget infeasible: too few subnets meet {budgets} (the smallest subnet needs {floor})")
    return pop, acc, evaluated


def _smallest(space: _Space) -> _Pop:
    return _Pop(np.full((1, NUM_BLOCKS), min(KERNEL_CHOICES)), np.full((1, NUM_BLOCKS), min(EXPAND_CHOICES)),
                np.full((1, NUM_STAGES), min(DEPTH_CHOICES)), np.array([space.r.min()]))


def _evolve(pop: _Pop, acc: np.ndarray, space: _Space, generations: int, population: int, parent_ratio: float,
            mutation_ratio: float, mutate_prob: float, scorer: Scorer, acc_key: str, limits: dict,
            acc_cache: dict[bytes, float], progress: Callable[[int, float], None] | None, gen_offset: int,
            best_before: float) -> tuple[_Pop, np.ndarray, list[float], int]:
    """OFA's evolution: keep the best parents, add mutants and crossover children, for ``generations``.
    Returns the final population, its accuracies, the best-so-far per generation and the count evaluated."""
    rng = space.rng
    n_parents = max(1, int(round(parent_ratio * population)))
    n_mut = int(round(mutation_ratio * population))
    history, evaluated = [], 0
    for gen in range(generations):
        order = np.argsort(-acc, kind="stable")
        parents, parent_acc = pop.take(order[:n_parents]), acc[order[:n_parents]]
        history.append(max(best_before, float(parent_acc[0])))
        if progress is not None:
            progress(gen_offset + gen, history[-1])

        def mutants(n: int) -> _Pop:
            return space.mutate(parents.take(rng.integers(0, n_parents, n)), mutate_prob)

        def children(n: int) -> _Pop:
            return space.crossover(parents.take(rng.integers(0, n_parents, n)), parents.take(rng.integers(0, n_parents, n)))

        new, new_acc, ev = _feasible_groups([mutants, children], [n_mut, population - n_parents - n_mut], scorer, acc_key, limits,
                                            cache=acc_cache)
        evaluated += ev
        pop, acc = _Pop.cat([parents, *new]), np.concatenate([parent_acc, *new_acc])
    return pop, acc, history, evaluated


@dataclass(frozen=True)
class SearchSettings:
    """The evolutionary search's knobs (OFA's EvolutionFinder defaults, two restarts)."""

    population: int = 100
    generations: int = 500  # the total, split over ``restarts`` independent populations
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    seed: int = 0
    restarts: int = 2
    resolutions: tuple[int, ...] | None = None  # default: every resolution the hardware target covers

    def replace(self, **changes) -> "SearchSettings":
        return dataclasses.replace(self, **changes)


def search(
    hardware: str = "note10",
    budgets: dict[str, float] | None = None,
    accuracy: str = "imagenet",
    settings: SearchSettings = SearchSettings(),
    *,
    supernet_card=None,
    scorer: Scorer | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> SearchResult:
    """The most accurate subnet (by the predictor ``accuracy``) within ``budgets``.

    ``budgets``: e.g. ``{"latency": 25.0}`` (ms on ``hardware``), ``"energy"`` (mJ),
    ``"macs"`` and ``"params"`` (millions). Raises ``ValueError`` when no subnet meets them.
    ``supernet_card``: the supernet searched (its sha256 picks its accuracy predictor, its width and classes
    count the costs); None: OFA's ImageNet w1.2 supernet (1,000 classes), as OFA's tutorial searches.
    ``settings.generations`` is the total budget, split over ``settings.restarts`` independent populations:
    two populations of 250 generations found a more accurate subnet than one of 500 in 10 of
    12 Note10 searches (+0.13 pp on average) for the same number of evaluations.
    """
    population, generations, seed, restarts = settings.population, settings.generations, settings.seed, settings.restarts
    parent_ratio, mutation_ratio, mutate_prob = settings.parent_ratio, settings.mutation_ratio, settings.mutate_prob
    resolutions = list(settings.resolutions) if settings.resolutions else None
    supernet_sha256 = getattr(supernet_card, "sha256", None) or None
    width_mult = getattr(supernet_card, "width_mult", 1.2)
    num_classes = getattr(supernet_card, "num_classes", 1000)
    t0 = time.perf_counter()
    budgets = dict(budgets or {})
    unknown = set(budgets) - set(BUDGETS)
    if unknown:
        raise ValueError(f"budget: unknown {', '.join(sorted(unknown))}; choose from {', '.join(BUDGETS)}")
    for k, v in budgets.items():
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
            raise ValueError(f"budget {k}: must be a positive number; got {v!r}")
    if accuracy not in ACCURACIES:
        raise ValueError(f"accuracy: choose from {', '.join(ACCURACIES)}; got {accuracy!r}")
    if population < 4 or generations < 1:
        raise ValueError("population must be >= 4 and generations >= 1")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1; got {restarts}")
    restarts = min(restarts, generations)
    limits = {BUDGETS[k]: float(v) * (1e6 if k in ("macs", "params") else 1.0) for k, v in budgets.items()}
    acc_key = ACCURACIES[accuracy]
    custom = scorer is not None
    if scorer is None and accuracy == "supernet":
        from app.predictors.accuracy import supernet_predictor

        if not supernet_sha256 or supernet_predictor(supernet_sha256) is None:
            raise ValueError("accuracy: no accuracy predictor is fitted for these supernet weights; "
                             "maximise OFA's ImageNet predictor ('imagenet') instead")
    if scorer is None:
        lo, hi = hardware_target(hardware).resolutions
        resolutions = resolutions or [r for r in RESOLUTION_CHOICES if lo <= r <= hi]
        scorer = predictor_scorer(hardware, supernet_sha256, width_mult, num_classes)
    resolutions = list(resolutions or RESOLUTION_CHOICES)
    bad_r = [r for r in resolutions if r not in RESOLUTION_CHOICES]
    if bad_r:
        raise ValueError(f"resolutions: {bad_r} not in the space (128-224 step 4)")
    rng = np.random.default_rng(seed)
    space = _Space(resolutions, rng)
    acc_cache: dict[bytes, float] = {}
    runs = [generations // restarts + (1 if i < generations % restarts else 0) for i in range(restarts)]
    pop = acc = None
    history: list[float] = []
    evaluated = 0
    for gens in runs:  # independent populations; the best of all wins
        p, a, ev = _initial_population(space, population, scorer, acc_key, limits, budgets)
        evaluated += ev
        p, a, hist, ev = _evolve(p, a, space, gens, population, parent_ratio, mutation_ratio, mutate_prob, scorer, acc_key,
                                 limits, acc_cache, progress, len(history), max(history, default=-np.inf))
        evaluated += ev
        history += hist
        pop, acc = (p, a) if pop is None else (_Pop.cat([pop, p]), np.concatenate([acc, a]))
    best = int(np.argmax(acc))
    bp = pop.take(np.array([best]))
    a_best = from_values(bp.ks, bp.e, bp.d, bp.r)
    if custom:
        m = scorer(a_best, [acc_key, *limits])
    else:
        from app.predictors.hardware import batch_scorer

        m = batch_scorer(hardware, None, supernet_sha256, width_mult, num_classes)(a_best)
    cfg = SubnetConfig(tuple(bp.ks[0].tolist()), tuple(bp.e[0].tolist()), tuple(bp.d[0].tolist()), int(bp.r[0]))
    metrics = {k: float(np.asarray(v)[0]) for k, v in m.items()}
    history.append(float(acc[best]))
    return SearchResult(cfg, float(acc[best]), metrics, history, time.perf_counter() - t0, evaluated)


def pareto_front(
    hardware: str = "note10",
    budget: str = "latency",
    limits: Sequence[float] = (),
    accuracy: str = "imagenet",
    settings: SearchSettings = SearchSettings(generations=100),
    *,
    supernet_card=None,
    progress: Callable[[int, int], None] | None = None,
) -> list[SearchResult]:
    """The best predicted accuracy under each budget in ``limits`` (infeasible budgets are skipped)."""
    out = []
    for i, limit in enumerate(limits):
        try:
            out.append(search(hardware, {budget: limit}, accuracy, settings, supernet_card=supernet_card))
        except ValueError as exc:
            if "infeasible" not in str(exc):
                raise
        if progress is not None:
            progress(i + 1, len(limits))
    return out
