"""Fit the bundled supernet's accuracy predictor from its measured dataset.

    python scripts/fit_accuracy_predictor.py [--min-configs 500]

Reads ``pretrained/predictors/imagenette_acc_dataset.csv`` (written by
``scripts/measure_accuracy_dataset.py``; rows for the current weights only, one per
config), holds out a seeded 20% of the configs, fits a ridge regression on OFA's 128-d
one-hot encoding (ridge strength by 5-fold cross-validation on the rest), reports the
held-out RMSE (percentage points) and Kendall's tau, and writes
``pretrained/predictors/imagenette_acc_predictor.json`` -- which the app uses only when
its ``supernet_sha256`` matches the loaded weights. With fewer than ``--min-configs``
configs it reports and writes nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.predictors.encoding import encode, ofa_features  # noqa: E402
from app.space import SubnetConfig  # noqa: E402
from app.weights import atomic_write_text, load_supernet  # noqa: E402

DATASET = ROOT / "pretrained" / "predictors" / "imagenette_acc_dataset.csv"
OUT = ROOT / "pretrained" / "predictors" / "imagenette_acc_predictor.json"
SEED, HELD_OUT = 0, 0.2


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a between two score vectors."""
    i, j = np.triu_indices(len(a), 1)
    s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return float(s.sum() / len(s))


def design(cfgs: list[SubnetConfig]) -> np.ndarray:
    return np.concatenate([ofa_features(encode(cfgs)).astype(np.float64), np.ones((len(cfgs), 1))], axis=1)


def ridge(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    reg = lam * np.eye(X.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the intercept
    return np.linalg.solve(X.T @ X + reg, X.T @ y)


def load_rows(sha: str) -> tuple[list[SubnetConfig], np.ndarray]:
    seen: dict[str, float] = {}
    with DATASET.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["supernet_sha256"] == sha:
                seen.setdefault(row["config"], float(row["top1_half_a"]))
    return [SubnetConfig.parse(c) for c in seen], np.array(list(seen.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min-configs", type=int, default=500)
    args = ap.parse_args()
    card = load_supernet().card
    cfgs, y = load_rows(card.sha256)
    n = len(cfgs)
    print(f"{n} measured configs for weights {card.sha256[:12]}")
    if n < 10:
        raise SystemExit("too few configs to fit anything")
    X = design(cfgs)
    perm = np.random.default_rng(SEED).permutation(n)
    n_train = int(round((1 - HELD_OUT) * n))
    tr, te = perm[:n_train], perm[n_train:]
    folds = np.array_split(tr, 5)
    best = None
    for lam in (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0):
        err = []
        for k in range(5):
            fit_idx = np.concatenate([folds[j] for j in range(5) if j != k])
            coef = ridge(X[fit_idx], y[fit_idx], lam)
            err.append(np.mean((X[folds[k]] @ coef - y[folds[k]]) ** 2))
        cv = float(np.sqrt(np.mean(err)))
        if best is None or cv < best[1]:
            best = (lam, cv)
    lam = best[0]
    coef = ridge(X[tr], y[tr], lam)
    pred = X[te] @ coef
    rmse = float(np.sqrt(np.mean((pred - y[te]) ** 2)))
    tau = kendall_tau(pred, y[te])
    print(f"ridge {lam}: CV RMSE {best[1]:.3f} pp; held-out ({len(te)} configs) RMSE {rmse:.3f} pp, Kendall tau {tau:.3f}; "
          f"measured top-1 range {y.min():.1f}-{y.max():.1f}%")
    if n < args.min_configs:
        print(f"not written: {n} < {args.min_configs} configs (the goal is >= 500)")
        return
    doc = {
        "supernet_sha256": card.sha256,
        "model": "ridge regression on OFA's 128-d one-hot encoding + intercept",
        "coef": coef.tolist(),
        "ridge": lam,
        "split": {"seed": SEED, "train": n_train, "n": n},
        "heldout": {"configs": len(te), "rmse_pp": rmse, "kendall_tau": tau},
        "target": "top-1 (%) on val half A of Imagenette (1,966 images), BN re-estimated with the app's fast path",
        "dataset": DATASET.name,
    }
    atomic_write_text(OUT, json.dumps(doc, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
