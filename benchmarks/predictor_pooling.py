"""How many configs a continued supernet needs measured: its accuracy predictor pooled with the
earlier weights' measurements, against fitting its own configs alone.

    python benchmarks/predictor_pooling.py --current DATASET.csv:SHA --earlier DATASET.csv:SHA [--sizes 60,100,150,200]

``--current`` names the measured rows the predictor is for (a dataset file and the weights'
sha256, or a unique prefix of it), ``--earlier`` the rows of the weights they continue. For each
size N and seed, N of the current configs are drawn at random; every other current config is
the test set. Three predictors are fitted
(:func:`app.predictors.accuracy.fit_supernet_predictor`, hyper-parameters by 5-fold CV):

* *pooled*: the N configs and every earlier row, with per-version offset, log-MACs and
  resolution terms (what ``scripts/fit_accuracy_predictor.py`` does for a continued supernet);
* *alone*: the N configs only;
* *earlier + offset*: the earlier rows alone, shifted by the mean residual on the N configs.

It prints RMSE (percentage points) and Kendall's tau on the test set. Two uses so far: the
real case (v3 weights continuing v2) and a proxy with the same weights under two measuring
protocols (BN on 30 images, the first dataset in git history: ``git show
d282238^:pretrained/predictors/imagenette_acc_dataset.csv``, against BN on 250).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small solves; threads only contend (with training, badly)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from common import header, table  # noqa: E402

from app.predictors import accuracy as acc  # noqa: E402


def rows(spec: str) -> dict[str, float]:
    """``path:sha`` -> {config: top-1} (first row per config)."""
    path, _, sha = spec.rpartition(":")
    out: dict[str, float] = {}
    shas: set[str] = set()
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            if row["supernet_sha256"].startswith(sha):
                shas.add(row["supernet_sha256"])
                out.setdefault(row["config"], float(row["top1_half_a"]))
    if len(shas) != 1:
        raise SystemExit(f"{spec}: the sha256 prefix matches {len(shas)} weights in {path}")
    return out


def features(configs: list[str], prior: np.ndarray | None = None) -> np.ndarray:
    return acc.config_features(configs, 1.2, 10, prior, 0 if prior is None else 1)  # the bundled supernet: w1.2, 10 classes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--current", required=True, help="DATASET.csv:SHA256-prefix of the weights predicted for")
    ap.add_argument("--earlier", required=True, help="DATASET.csv:SHA256-prefix of the weights they continue")
    ap.add_argument("--sizes", default="60,100,150,200")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    current, earlier = rows(args.current), rows(args.earlier)
    cur_configs, old_configs = list(current), list(earlier)
    y_old = np.array([earlier[c] for c in old_configs])
    old_alone = acc.fit_supernet_predictor(features(old_configs), y_old, held_out=0.0)["model_fit"]
    print(header("Accuracy predictor: pooled with the earlier weights' rows vs alone"))
    print(f"current: {args.current} ({len(current)} configs); earlier: {args.earlier} ({len(earlier)} configs)\n")
    out = []
    for n in (int(s) for s in args.sizes.split(",")):
        if n >= len(cur_configs):
            continue
        for seed in range(args.seeds):
            pick = np.random.default_rng(seed).permutation(len(cur_configs))
            train = [cur_configs[i] for i in pick[:n]]
            test = [cur_configs[i] for i in pick[n:]]
            y_train = np.array([current[c] for c in train])
            y_test = np.array([current[c] for c in test])
            prior = np.r_[np.full(n, -1), np.zeros(len(old_configs), dtype=int)]
            pooled = acc.fit_supernet_predictor(features(train + old_configs, prior), np.r_[y_train, y_old],
                                                held_out=0.0, prior=prior)["model_fit"]
            alone = acc.fit_supernet_predictor(features(train), y_train, held_out=0.0)["model_fit"]
            X_test = features(test)
            preds = {
                "pooled": pooled(features(test, np.full(len(test), -1))),
                "alone": alone(X_test),
                "earlier + offset": old_alone(X_test) + np.mean(y_train - old_alone(features(train))),
            }
            row: list[object] = [n, seed, len(test)]
            for p in preds.values():
                row += [f"{np.sqrt(np.mean((p - y_test) ** 2)):.3f}", f"{acc.kendall_tau(p, y_test):.3f}"]
            out.append(row)
            print(f"N={n} seed={seed} done", file=sys.stderr, flush=True)
    print(table(["N", "seed", "test configs"] + [f"{k} {m}" for k in preds for m in ("RMSE", "tau")], out))


if __name__ == "__main__":
    main()
