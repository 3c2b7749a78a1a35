"""Accuracy predictors: OFA's ImageNet predictor (w1.2 space) and the bundled supernet's own.

OFA's predictor (``acc_predictor.pth``, han-cai/files, MIT) is an MLP on the 128-d
one-hot encoding. It predicts top-1 on OFA's 10K-image holdout drawn from ImageNet
*train*, which runs above official val top-1 (OFA tutorial: 81.7% predicted vs 76.9%
measured on val). :func:`imagenet_val_calibration` maps it to official val top-1 with a
linear fit on OFA's published specialised w1.2 subnets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from app.predictors.encoding import ConfigArrays, ofa_features

PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"
OFA_PREDICTOR = PRETRAINED / "predictors" / "ofa_acc_predictor_w1.2.safetensors"
OFA_SOURCE = "OFA ImageNet accuracy predictor (han-cai/files acc_predictor.pth, MIT)"


@dataclass(frozen=True)
class MLP:
    """A ReLU MLP (weights stored transposed, read-only); numpy in, numpy out."""

    weights_t: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        for i, (w, b) in enumerate(zip(self.weights_t, self.biases)):
            h = torch.addmm(b, h, w)
            if i < len(self.weights_t) - 1:
                h.clamp_(min=0)
        return h[:, 0].numpy().astype(np.float64)


def _load_mlp(path: Path) -> MLP:
    from safetensors.torch import load_file

    state = load_file(str(path))
    layers = sorted({int(k.split(".")[0]) for k in state})
    ws = tuple(state[f"{i}.weight"].float().t().contiguous() for i in layers)
    bs = tuple(state[f"{i}.bias"].float().contiguous() for i in layers)
    return MLP(ws, bs)


@lru_cache(maxsize=1)
def ofa_predictor() -> MLP:
    return _load_mlp(OFA_PREDICTOR)


def ofa_holdout_top1(a: ConfigArrays) -> np.ndarray:
    """OFA's predicted top-1 (%) on its ImageNet-train holdout, for w1.2 configs."""
    return 100.0 * ofa_predictor()(ofa_features(a))


@dataclass(frozen=True)
class LinearCalibration:
    slope: float
    intercept: float
    loo_mae: float  # leave-one-out mean absolute error, percentage points
    n: int
    subnets: tuple[str, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.slope * x + self.intercept


@lru_cache(maxsize=1)
def imagenet_val_calibration() -> LinearCalibration:
    """Linear map predicted-holdout -> published val top-1, fitted on OFA's specialised w1.2 subnets
    (published after 75 fine-tuning epochs) that lie in this space's resolution range."""
    from app.predictors.encoding import encode
    from app.presets import specialised

    chosen = [p for p in specialised() if p.width_mult == 1.2 and p.image_size == p.config.r]
    x = ofa_holdout_top1(encode([p.config for p in chosen]))
    y = np.array([p.published_top1 for p in chosen])
    design = np.stack([x, np.ones_like(x)], axis=1)
    slope, intercept = np.linalg.lstsq(design, y, rcond=None)[0]
    errs = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        s, c = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
        errs.append(abs(s * x[i] + c - y[i]))
    return LinearCalibration(float(slope), float(intercept), float(np.mean(errs)), len(x), tuple(p.name for p in chosen))


SUPERNET_PREDICTOR = PRETRAINED / "predictors" / "imagenette_acc_predictor.json"
SUPERNET_DATASET = PRETRAINED / "predictors" / "imagenette_acc_dataset.csv"
RIDGE_STRENGTHS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


@lru_cache(maxsize=4)
def supernet_predictor(sha256: str) -> dict | None:
    """The bundled supernet's accuracy predictor, if one was fitted for these weights."""
    if not SUPERNET_PREDICTOR.is_file():
        return None
    doc = json.loads(SUPERNET_PREDICTOR.read_text("utf-8"))
    if doc.get("supernet_sha256") != sha256:
        return None
    doc["coef"] = np.asarray(doc["coef"], dtype=np.float64)
    return doc


def supernet_design(a: ConfigArrays, macs: np.ndarray) -> np.ndarray:
    """Features of the bundled supernet's predictor: OFA's 128-d one-hot encoding, log MACs,
    resolution and its square (centred), and an intercept."""
    rn = (a.r.astype(np.float64) - 176.0) / 48.0
    extra = np.stack([np.log(np.asarray(macs, dtype=np.float64) / 3e8), rn, rn**2, np.ones(len(a))], axis=1)
    return np.concatenate([ofa_features(a).astype(np.float64), extra], axis=1)


def supernet_top1(doc: dict, a: ConfigArrays, macs: np.ndarray) -> np.ndarray:
    """Predicted top-1 (%) of configs ``a`` (their MACs given) with the fitted ``doc``."""
    return supernet_design(a, macs) @ doc["coef"]


def load_supernet_dataset(card, path: Path = SUPERNET_DATASET) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix and measured top-1 of the dataset rows for ``card``'s weights (first row per config)."""
    import csv

    from app.predictors.encoding import encode
    from app.predictors.hardware import cost_batch
    from app.space import SubnetConfig

    seen: dict[str, float] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            if row["supernet_sha256"] == card.sha256:
                seen.setdefault(row["config"], float(row["top1_half_a"]))
    a = encode([SubnetConfig.parse(c) for c in seen])
    return supernet_design(a, cost_batch(a, "macs", card.width_mult, card.num_classes)), np.array(list(seen.values()))


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a between two score vectors."""
    i, j = np.triu_indices(len(a), 1)
    s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return float(s.sum() / len(s))


def _ridge(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    reg = lam * np.eye(X.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the intercept (the last column)
    return np.linalg.solve(X.T @ X + reg, X.T @ y)


def fit_supernet_predictor(X: np.ndarray, y: np.ndarray, seed: int = 0, held_out: float = 0.2) -> dict:
    """Ridge regression of measured top-1 ``y`` on design ``X``: a seeded ``held_out`` share of the rows
    is kept aside; the ridge strength is chosen by 5-fold cross-validation on the rest, which the
    coefficients are then fitted on. Returns coefficients, the strength, the split and the held-out
    RMSE (percentage points) and Kendall's tau."""
    n = len(y)
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round((1 - held_out) * n))
    tr, te = perm[:n_train], perm[n_train:]
    folds = np.array_split(tr, 5)
    cv = {}
    for lam in RIDGE_STRENGTHS:
        err = []
        for k in range(5):
            fit_idx = np.concatenate([folds[j] for j in range(5) if j != k])
            err.append(np.mean((X[folds[k]] @ _ridge(X[fit_idx], y[fit_idx], lam) - y[folds[k]]) ** 2))
        cv[lam] = float(np.sqrt(np.mean(err)))
    lam = min(cv, key=cv.get)
    coef = _ridge(X[tr], y[tr], lam)
    pred = X[te] @ coef
    baseline = float(np.sqrt(np.mean((y[tr].mean() - y[te]) ** 2)))
    return {
        "coef": coef,
        "ridge": lam,
        "cv_rmse_pp": cv[lam],
        "split": {"seed": seed, "train": int(n_train), "n": int(n)},
        "heldout": {"configs": int(len(te)), "rmse_pp": float(np.sqrt(np.mean((pred - y[te]) ** 2))),
                    "kendall_tau": kendall_tau(pred, y[te]), "rmse_pp_predicting_the_mean": baseline},
    }
