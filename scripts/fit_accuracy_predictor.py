"""Fit the bundled supernet's accuracy predictor from its measured dataset.

    python scripts/fit_accuracy_predictor.py [--dataset pretrained/predictors/imagenette_acc_dataset_bn250.csv] [--min-configs 500]

Reads a dataset written by ``scripts/measure_accuracy_dataset.py`` (rows for the current
weights only, one per config), holds out a seeded 20% of the configs and fits the model of
:func:`app.predictors.accuracy.fit_supernet_predictor` on the rest: ridge regression on
:func:`app.predictors.accuracy.supernet_features`, then RBF kernel ridge on its residuals,
every strength chosen by 5-fold cross-validation. Reports the held-out RMSE (percentage points)
and Kendall's tau, and writes ``pretrained/predictors/imagenette_acc_predictor.json`` -- which
the app uses only when its ``supernet_sha256`` matches the loaded weights. With fewer than
``--min-configs`` configs it reports and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.predictors.accuracy import (  # noqa: E402
    SUPERNET_DATASET,
    SUPERNET_PREDICTOR,
    fit_supernet_predictor,
    load_supernet_dataset,
    predictor_document,
)
from app.weights import atomic_write_text, load_supernet  # noqa: E402


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
    ap.add_argument("--min-configs", type=int, default=500)
    args = ap.parse_args()
    card = load_supernet().card
    data = load_supernet_dataset(card, args.dataset)
    y = data.y
    print(f"{len(y)} measured configs for weights {card.sha256[:12]}")
    if len(y) < 10:
        raise SystemExit("too few configs to fit anything")
    fit = fit_supernet_predictor(data.X, y)
    h = fit["heldout"]
    print(f"ridge {fit['ridge']}, kernel gamma {fit['kernel_gamma']} strength {fit['kernel_ridge']}: "
          f"CV RMSE {fit['cv_rmse_pp']:.3f} pp (linear part alone {fit['cv_rmse_pp_linear_only']:.3f}); "
          f"held-out ({h['configs']} configs) RMSE {h['rmse_pp']:.3f} pp (linear part alone {h['rmse_pp_linear_part_only']:.3f}, "
          f"predicting the mean {h['rmse_pp_predicting_the_mean']:.3f}), Kendall tau {h['kendall_tau']:.3f}; "
          f"measured top-1 range {y.min():.1f}-{y.max():.1f}%")
    if len(y) < args.min_configs:
        print(f"not written: {len(y)} < {args.min_configs} configs (the goal is >= 500)")
        return
    doc = predictor_document(fit, data, card, target(args.dataset), args.dataset.name)
    atomic_write_text(SUPERNET_PREDICTOR, json.dumps(doc, indent=1) + "\n")
    print("wrote", SUPERNET_PREDICTOR)


if __name__ == "__main__":
    main()
