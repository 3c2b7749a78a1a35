"""int8 accuracy: the fp32 prediction corrected by a model of what int8 quantization costs, fitted on measured configs.

The dataset (``pretrained/int8/dataset_bn250.csv``, made by ``scripts/measure_int8.py predictor``) holds configs of the
fp32 predictor's own dataset measured the same way (BN on 250 training images, val half A) in fp32 and in int8
(:mod:`app.quantize`). The correction is ridge regression of the drop (int8 − fp32, percentage points) on a few
features of the config (log MACs, resolution, mean kernel size, mean expand ratio, depth), or the mean drop when
leave-one-out cross-validation says the features do not help. Its error is reported two ways: the correction's
leave-one-out RMSE, and the int8 prediction (fp32 predictor + correction) on the configs the fp32 predictor held out.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from app.paths import PRETRAINED

INT8_DATASET = PRETRAINED / "int8" / "dataset_bn250.csv"
INT8_CARD = PRETRAINED / "int8" / "card.jsonl"
RIDGE = 1.0


def _features(a, macs: np.ndarray) -> np.ndarray:
    from app.space import MAX_DEPTH, NUM_STAGES

    n = len(a)
    act = a.active.reshape(n, NUM_STAGES, MAX_DEPTH).astype(np.float64)
    k = (a.k_idx.reshape(n, NUM_STAGES, MAX_DEPTH) * act).sum((1, 2)) / act.sum((1, 2))
    e = (a.e_idx.reshape(n, NUM_STAGES, MAX_DEPTH) * act).sum((1, 2)) / act.sum((1, 2))
    return np.stack([np.log(np.asarray(macs, np.float64) / 3e8), (a.r - 176.0) / 48.0, k - 1.0, e - 1.0,
                     a.d.sum(1) / 5.0 - 3.0], axis=1)


@dataclass(frozen=True)
class Int8Correction:
    """The fitted drop model and how well it predicts unseen configs."""

    coef: tuple[float, ...]  # intercept first; all zero but the intercept when the mean drop was chosen
    configs: int
    mean_drop_pp: float
    loo_rmse_pp: float  # leave-one-out RMSE of the drop
    loo_rmse_pp_mean_only: float
    uses_features: bool
    heldout_configs: int  # configs neither the fp32 predictor nor this correction saw (LOO)
    heldout_rmse_pp: float | None  # int8 top-1 predicted (fp32 predictor + LOO correction) vs measured

    def drop(self, a, macs: np.ndarray) -> np.ndarray:
        X = np.concatenate([np.ones((len(a), 1)), _features(a, macs)], axis=1)
        return X @ np.asarray(self.coef)

    @property
    def source(self) -> str:
        held = (f"; int8 top-1 predicted end to end on {self.heldout_configs} configs neither fit saw: RMSE "
                f"{self.heldout_rmse_pp:.2f} pp" if self.heldout_rmse_pp is not None else "")
        how = "ridge on log MACs, resolution, kernel, expand, depth" if self.uses_features else "the mean drop"
        return (f"fp32 prediction + int8 correction ({how}) fitted on {self.configs} configs measured in int8 here "
                f"(onnxruntime, static QDQ); mean drop {self.mean_drop_pp:+.2f} pp, correction's leave-one-out RMSE "
                f"{self.loo_rmse_pp:.2f} pp{held}")


def _ridge(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    reg = lam * np.eye(X.shape[1])
    reg[0, 0] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(X.T @ X + reg, X.T @ y)


def _loo(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Leave-one-out predictions."""
    out = np.empty_like(y)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        out[i] = X[i] @ _ridge(X[keep], y[keep], lam)
    return out


def fp32_heldout(card) -> list[str]:
    """Configs the bundled fp32 accuracy predictor kept out of its published fit (split seed 0)."""
    from app.predictors.accuracy import heldout_split, load_supernet_dataset

    data = load_supernet_dataset(card)
    _, te = heldout_split(np.flatnonzero(data.prior < 0), seed=0)
    return [data.configs[i] for i in te]


def read_dataset(sha256: str, path=INT8_DATASET) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["supernet_sha256"] == sha256]


@lru_cache(maxsize=4)
def int8_correction(sha256: str) -> Int8Correction | None:
    """The correction fitted on this supernet's int8 measurements; None without enough of them (fewer than 10)."""
    from app.costs import cost_batch
    from app.predictors import accuracy as acc
    from app.predictors.encoding import encode
    from app.predictors.hardware import bundled_card
    from app.space import SubnetConfig

    rows = read_dataset(sha256)
    if len(rows) < 10:
        return None
    card = bundled_card()
    width, classes = (card.width_mult, card.num_classes) if card is not None and card.sha256 == sha256 else (1.2, 10)
    a = encode([SubnetConfig.from_compact(r["config"]) for r in rows])
    macs = cost_batch(a, "macs", width, classes)
    drop = np.array([float(r["top1_int8"]) - float(r["top1_fp32"]) for r in rows])
    X = np.concatenate([np.ones((len(rows), 1)), _features(a, macs)], axis=1)
    loo_feat = _loo(X, drop, RIDGE)
    loo_mean = _loo(X[:, :1], drop, 0.0)
    rmse = lambda p: float(np.sqrt(np.mean((p - drop) ** 2)))  # noqa: E731
    uses = rmse(loo_feat) < rmse(loo_mean)
    coef = _ridge(X, drop, RIDGE) if uses else np.concatenate([[drop.mean()], np.zeros(X.shape[1] - 1)])
    loo = loo_feat if uses else loo_mean
    held_rmse, n_held = None, 0
    doc = acc.supernet_predictor(sha256)
    if doc and card is not None and card.sha256 == sha256:
        held = set(fp32_heldout(card))
        idx = [i for i, r in enumerate(rows) if r["config"] in held]
        if idx:
            fp32_pred = acc.supernet_top1(doc, a, macs)[idx]
            measured = np.array([float(rows[i]["top1_int8"]) for i in idx])
            held_rmse, n_held = float(np.sqrt(np.mean((fp32_pred + loo[idx] - measured) ** 2))), len(idx)
    return Int8Correction(tuple(float(c) for c in coef), len(rows), float(drop.mean()), rmse(loo), rmse(loo_mean), bool(uses),
                          n_held, held_rmse)
