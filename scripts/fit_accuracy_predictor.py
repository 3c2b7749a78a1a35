"""Fit the bundled supernet's accuracy predictor from its measured dataset.

    python scripts/fit_accuracy_predictor.py [--dataset pretrained/predictors/imagenette_acc_dataset_bn250.csv]

Reads a dataset written by ``scripts/measure_accuracy_dataset.py``: the rows for the current
weights and for the earlier weights they continue (the card's lineage), one per config and
version. It holds out a seeded 20% of the current weights' configs and fits the model of
:func:`app.predictors.accuracy.fit_supernet_predictor` on the rest and on every earlier row:
ridge regression on :func:`app.predictors.accuracy.supernet_features` (with an offset, log-MACs
and resolution term per earlier version, so earlier measurements teach the shape and the
current ones the level), then RBF kernel ridge on its residuals, every strength chosen by 5-fold
cross-validation over the current weights' configs. Reports the held-out RMSE (percentage
points) and Kendall's tau, the same over ``SKILL_SPLITS`` seeded splits, and writes ``pretrained/predictors/imagenette_acc_predictor.json``
-- which the app uses only when its ``supernet_sha256`` matches the loaded weights. With fewer
than ``--min-configs`` rows in all, or fewer than ``--min-current`` for the current weights, it
reports and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from app.predictors.accuracy import (
    MIN_CURRENT_CONFIGS,
    SUPERNET_DATASET,
    SUPERNET_PREDICTOR,
    fit_over_splits,
    load_supernet_dataset,
    predictor_document,
    summarise_splits,
)
from app.weights import atomic_write_text, load_supernet


def target(dataset: Path) -> str:
    """What a dataset's rows measure (named by the file: ``..._bn<N>.csv``)."""
    m = re.search(r"_bn(\d+)\.csv$", dataset.name)
    if not m:
        raise SystemExit(f"{dataset.name}: the file name must say its BN set (..._bn<N>.csv)")
    return (f"top-1 (%) on Imagenette val half A (1,966 images, a seeded per-class half) with BN re-estimated "
            f"on {m.group(1)} class-balanced training images (seed 0, one batch)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=SUPERNET_DATASET)
    ap.add_argument("--min-configs", type=int, default=500, help="rows in all (current and earlier weights)")
    ap.add_argument("--min-current", type=int, default=MIN_CURRENT_CONFIGS, help="rows measured on the current weights")
    ap.add_argument("--weights", default=None, help="supernet the predictor is for (default: the bundled one)")
    args = ap.parse_args()
    card = load_supernet(args.weights).card
    data = load_supernet_dataset(card, args.dataset)
    y = data.y
    current = int((data.prior < 0).sum())
    print(f"{current} measured configs for weights {card.sha256[:12]}"
          + "".join(f", {int((data.prior == i).sum())} for earlier weights {sha[:12]}" for i, sha in enumerate(data.priors)))
    if current < 10:
        raise SystemExit("too few configs to fit anything")
    fits = fit_over_splits(data.X, y, prior=data.prior)
    fit = fits[0]
    print(f"ridge {fit['ridge']}, kernel gamma {fit['kernel_gamma']} strength {fit['kernel_ridge']}: "
          f"CV RMSE {fit['cv_rmse_pp']:.3f} pp (linear part alone {fit['cv_rmse_pp_linear_only']:.3f}); "
          f"measured top-1 range {y[data.prior < 0].min():.1f}-{y[data.prior < 0].max():.1f}%")
    for seed, s in enumerate(f["heldout"] for f in fits):
        print(f"split seed {seed}: held-out ({s['configs']} configs) RMSE {s['rmse_pp']:.3f} pp (linear part alone "
              f"{s['rmse_pp_linear_part_only']:.3f}, predicting the mean {s['rmse_pp_predicting_the_mean']:.3f}), "
              f"Kendall tau {s['kendall_tau']:.3f}")
    mean = summarise_splits(fits)
    print(f"mean over {mean['splits']} splits: RMSE {mean['rmse_pp']:.3f} pp "
          f"(predicting the mean {mean['rmse_pp_predicting_the_mean']:.3f}), Kendall tau {mean['kendall_tau']:.3f}")
    if len(y) < args.min_configs or current < args.min_current:
        print(f"not written: {len(y)} rows ({current} on these weights); needs {args.min_configs} ({args.min_current})")
        return
    doc = predictor_document(fits, data, card, target(args.dataset), args.dataset.name)
    atomic_write_text(SUPERNET_PREDICTOR, json.dumps(doc, indent=1) + "\n")
    print("wrote", SUPERNET_PREDICTOR)


if __name__ == "__main__":
    main()
