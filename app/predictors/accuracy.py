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

from app.paths import PRETRAINED

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
SUPERNET_DATASET = PRETRAINED / "predictors" / "imagenette_acc_dataset_bn250.csv"
RIDGE_STRENGTHS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
KERNEL_GAMMAS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)  # RBF width on standardised features
KERNEL_STRENGTHS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# configs measured on the weights predicted for, when earlier versions' rows fill the rest: with 60, pooling
# predicted unseen configs as well as a fit on all 560 (benchmarks/predictor_pooling.py, README)
MIN_CURRENT_CONFIGS = 60
SKILL_SPLITS = 4  # seeded held-out splits over which the predictor must show skill
SHIFT_TERMS = 3  # per earlier weights version in the dataset: offset, x log MACs, x resolution
SUPERNET_MODEL = ("ridge regression on OFA's 128-d one-hot encoding, log MACs, a one-hot of the resolution and "
                  "resolution x per-stage (depth one-hot, mean kernel, mean expand ratio), plus RBF kernel ridge "
                  "on its residuals")


def supernet_features(a: ConfigArrays, macs: np.ndarray, prior: np.ndarray | None = None, n_priors: int = 0) -> np.ndarray:
    """Features of the bundled supernet's predictor (no intercept column): OFA's 128-d one-hot encoding,
    log MACs, a one-hot of the resolution (every choice), and the centred resolution times each stage's
    depth one-hot, mean kernel index and mean expand index over its active blocks.

    With ``n_priors`` earlier weights versions in the dataset, :data:`SHIFT_TERMS` columns per version
    follow: for a row measured on version ``prior[i]`` (``-1``: the weights predicted for, the default
    for every row) its offset, log MACs and centred resolution, so one fit learns how much each
    earlier version differs and predicts in the units of the current one."""
    from app.space import DEPTH_CHOICES, MAX_DEPTH, NUM_STAGES, RESOLUTION_CHOICES

    n = len(a)
    rn = ((a.r.astype(np.float64) - 176.0) / 48.0)[:, None]
    res = (a.r[:, None] == np.asarray(RESOLUTION_CHOICES)[None, :]).astype(np.float64)
    depth = (a.d[:, :, None] == np.asarray(DEPTH_CHOICES)[None, None, :]).reshape(n, -1).astype(np.float64)
    act = a.active.reshape(n, NUM_STAGES, MAX_DEPTH).astype(np.float64)
    n_act = act.sum(2)
    k_mean = (a.k_idx.reshape(n, NUM_STAGES, MAX_DEPTH) * act).sum(2) / n_act
    e_mean = (a.e_idx.reshape(n, NUM_STAGES, MAX_DEPTH) * act).sum(2) / n_act
    log_macs = np.log(np.asarray(macs, dtype=np.float64) / 3e8)[:, None]
    shift = np.zeros((n, SHIFT_TERMS * n_priors))
    if prior is not None and n_priors:
        rows = np.flatnonzero(prior >= 0)
        cols = SHIFT_TERMS * prior[rows, None] + np.arange(SHIFT_TERMS)[None, :]
        shift[rows[:, None], cols] = np.concatenate([np.ones((n, 1)), log_macs, rn], axis=1)[rows]
    return np.concatenate([ofa_features(a).astype(np.float64), log_macs, res, rn * depth, rn * k_mean, rn * e_mean, shift], axis=1)


@dataclass(frozen=True)
class SupernetAccuracyModel:
    """Ridge on :func:`supernet_features` plus RBF kernel ridge on its residuals; features in, top-1 (%) out."""

    coef: np.ndarray  # linear weights, intercept last
    x_mean: np.ndarray  # standardisation of the kernel's inputs
    x_scale: np.ndarray
    anchors: np.ndarray  # standardised features of the training configs
    alpha: np.ndarray  # kernel weights, one per anchor
    gamma: float

    def linear(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef[:-1] + self.coef[-1]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if len(self.alpha) == 0:
            return self.linear(X)
        return self.linear(X) + _rbf(_standardise(X, self.x_mean, self.x_scale), self.anchors, self.gamma) @ self.alpha


def _standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (X - mean) / scale


def _rbf(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.exp(-gamma * np.maximum(sq, 0.0))


def _ridge(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Ridge weights of ``y`` on ``X`` with an unpenalised intercept (returned last)."""
    Xi = np.concatenate([X, np.ones((len(X), 1))], axis=1)
    reg = lam * np.eye(Xi.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(Xi.T @ Xi + reg, Xi.T @ y)


def _standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale of the kernel's inputs (constant features keep scale 1)."""
    scale = X.std(0)
    return X.mean(0), np.where(scale > 1e-12, scale, 1.0)


def _fit_model(X: np.ndarray, y: np.ndarray, lam: float, gamma: float, kernel_lam: float | None) -> SupernetAccuracyModel:
    """The two-stage model on rows ``X``, ``y``; ``kernel_lam=None`` leaves out the kernel part."""
    mean, scale = _standardisation(X)
    Z = _standardise(X, mean, scale)
    linear = SupernetAccuracyModel(_ridge(X, y, lam), mean, scale, Z[:0], np.zeros(0), gamma)
    if kernel_lam is None:
        return linear
    alpha = np.linalg.solve(_rbf(Z, Z, gamma) + kernel_lam * np.eye(len(Z)), y - linear(X))
    return SupernetAccuracyModel(linear.coef, mean, scale, Z, alpha, gamma)


def _cv_rmse(X: np.ndarray, y: np.ndarray, folds: list[np.ndarray], always: np.ndarray, **params) -> float:
    """Cross-validated RMSE over ``folds``; the rows ``always`` are in every fit and never validated."""
    err = []
    for k in range(len(folds)):
        fit_idx = np.concatenate([folds[j] for j in range(len(folds)) if j != k] + [always])
        model = _fit_model(X[fit_idx], y[fit_idx], **params)
        err.append(np.mean((model(X[folds[k]]) - y[folds[k]]) ** 2))
    return float(np.sqrt(np.mean(err)))


def heldout_split(current: np.ndarray, seed: int = 0, held_out: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(fitted, held-out) row indices of the rows ``current`` (measured on the weights predicted for): a seeded
    ``held_out`` share is kept out of the fit."""
    perm = current[np.random.default_rng(seed).permutation(len(current))]
    n_train = int(round((1 - held_out) * len(current)))
    return np.sort(perm[:n_train]), perm[n_train:]


def fit_supernet_predictor(X: np.ndarray, y: np.ndarray, seed: int = 0, held_out: float = 0.2,
                           prior: np.ndarray | None = None) -> dict:
    """Fit the two-stage model of measured top-1 ``y`` on features ``X``: a seeded ``held_out`` share of
    the rows is kept aside; on the rest, 5-fold cross-validation chooses the ridge strength first, then
    the kernel's width and strength (or no kernel part, if it does not lower the CV error). Rows with
    ``prior >= 0`` (measured on earlier weights) are always fitted and never held out or validated.
    Returns the hyper-parameters, the split, the model and its held-out RMSE (percentage points) and
    Kendall's tau (``heldout`` is None when ``held_out`` leaves no row out)."""
    earlier = np.flatnonzero(prior >= 0) if prior is not None else np.zeros(0, dtype=int)
    current = np.setdiff1d(np.arange(len(y)), earlier)
    tr_current, te = heldout_split(current, seed, held_out)
    n_train = len(tr_current)
    folds = np.array_split(np.random.default_rng(seed + 1).permutation(tr_current), 5)
    cv_ridge = {lam: _cv_rmse(X, y, folds, earlier, lam=lam, gamma=0.0, kernel_lam=None) for lam in RIDGE_STRENGTHS}
    lam = min(cv_ridge, key=cv_ridge.get)
    best = (cv_ridge[lam], 0.0, None)
    for gamma in KERNEL_GAMMAS:
        for kl in KERNEL_STRENGTHS:
            e = _cv_rmse(X, y, folds, earlier, lam=lam, gamma=gamma, kernel_lam=kl)
            if e < best[0]:
                best = (e, gamma, kl)
    cv, gamma, kernel_lam = best
    tr = np.sort(np.concatenate([tr_current, earlier]))
    model = _fit_model(X[tr], y[tr], lam, gamma, kernel_lam)
    return {
        "model_fit": model,
        "ridge": lam,
        "kernel_gamma": gamma,
        "kernel_ridge": kernel_lam,
        "cv_rmse_pp": cv,
        "cv_rmse_pp_linear_only": cv_ridge[lam],
        "split": {"seed": seed, "train": int(n_train), "n": int(len(current)), "earlier_weights_rows": int(len(earlier))},
        "train_rows": tr.tolist(),
        "heldout": _heldout_figures(model, X[te], y[te], y[tr_current].mean()) if len(te) else None,
    }


def fit_over_splits(X: np.ndarray, y: np.ndarray, prior: np.ndarray | None = None,
                    splits: int = SKILL_SPLITS) -> list[dict]:
    """:func:`fit_supernet_predictor` for split seeds ``0 .. splits-1`` (the published fit is seed 0's): with
    60-80 current configs one split holds out 12-16, too few for one split to show skill or its absence."""
    return [fit_supernet_predictor(X, y, seed=seed, prior=prior) for seed in range(splits)]


def _heldout_figures(model: SupernetAccuracyModel, X: np.ndarray, y: np.ndarray, train_mean: float) -> dict:
    pred = model(X)
    return {"configs": int(len(y)), "rmse_pp": _rmse(pred, y), "kendall_tau": kendall_tau(pred, y),
            "rmse_pp_predicting_the_mean": _rmse(np.full_like(y, train_mean), y),
            "rmse_pp_linear_part_only": _rmse(model.linear(X), y)}


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


@dataclass(frozen=True)
class SupernetDataset:
    """The measured dataset of the bundled supernet's predictor: configs, features, measured top-1, and
    for each row which earlier weights version it was measured on (``-1``: the current weights)."""

    configs: list[str]
    X: np.ndarray
    y: np.ndarray
    prior: np.ndarray
    priors: tuple[str, ...]  # sha256 of the earlier versions, in the order of their shift columns


def load_supernet_dataset(card, path: Path = SUPERNET_DATASET) -> SupernetDataset:
    """The dataset rows for ``card``'s weights and for the earlier weights they continue (the card's
    training lineage), the first row per config and version."""
    import csv

    lineage = [run["sha256"] for run in (card.extra or {}).get("lineage", []) if run.get("sha256")]
    seen: dict[tuple[str, str], float] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            if row["supernet_sha256"] == card.sha256 or row["supernet_sha256"] in lineage:
                seen.setdefault((row["supernet_sha256"], row["config"]), float(row["top1_half_a"]))
    priors = tuple(sha for sha in lineage if any(k[0] == sha for k in seen))
    keys = sorted(seen, key=lambda k: k[0] != card.sha256)  # current weights first, each in file order
    configs = [c for _, c in keys]
    prior = np.array([priors.index(sha) if sha != card.sha256 else -1 for sha, _ in keys], dtype=int)
    X = config_features(configs, card.width_mult, card.num_classes, prior, len(priors))
    return SupernetDataset(configs, X, np.array([seen[k] for k in keys]), prior, priors)


def config_features(configs: list[str], width_mult: float, num_classes: int, prior: np.ndarray | None = None,
                 n_priors: int = 0) -> np.ndarray:
    """:func:`supernet_features` of configs given as compact strings, their MACs counted here."""
    from app.predictors.encoding import encode
    from app.costs import cost_batch
    from app.space import SubnetConfig

    a = encode([SubnetConfig.parse(c) for c in configs])
    return supernet_features(a, cost_batch(a, "macs", width_mult, num_classes), prior, n_priors)


def summarise_splits(fits: list[dict]) -> dict:
    """Held-out RMSE, RMSE of predicting the mean and Kendall's tau, each averaged over the fits' splits."""
    splits = [f["heldout"] for f in fits]
    return {"splits": len(splits),
            **{key: float(np.mean([s[key] for s in splits])) for key in ("rmse_pp", "rmse_pp_predicting_the_mean", "kendall_tau")}}


def predictor_document(fits: list[dict], data: SupernetDataset, card, target: str, dataset_name: str) -> dict:
    """The JSON form of the published fit (the first of ``fits``, from :func:`fit_over_splits`):
    hyper-parameters, figures (its own split's and the mean over all splits), linear weights, kernel
    weights and the configs they belong to (their features are recomputed at load)."""
    fit = fits[0]
    m: SupernetAccuracyModel = fit["model_fit"]
    return {"supernet_sha256": card.sha256, "width_mult": card.width_mult, "num_classes": card.num_classes, "model": SUPERNET_MODEL, "target": target, "dataset": dataset_name,
            **{k: v for k, v in fit.items() if k not in ("model_fit", "train_rows")},
            "heldout_over_splits": summarise_splits(fits),
            "earlier_weights": list(data.priors),
            "coef": m.coef.tolist(), "kernel_alpha": m.alpha.tolist(),
            "kernel_configs": [data.configs[i] for i in fit["train_rows"]] if len(m.alpha) else [],
            "kernel_prior": [int(data.prior[i]) for i in fit["train_rows"]] if len(m.alpha) and data.priors else []}


@lru_cache(maxsize=4)
def supernet_predictor(sha256: str) -> dict | None:
    """The bundled supernet's accuracy predictor, if one was fitted for these weights; its ``model_fit``
    is the callable model (read-only). An unreadable file is reported (a warning) and treated as absent."""
    if not SUPERNET_PREDICTOR.is_file():
        return None
    try:
        doc = json.loads(SUPERNET_PREDICTOR.read_text("utf-8"))
        if doc.get("supernet_sha256") != sha256:
            return None
        missing = {"target", "split", "heldout", "heldout_over_splits"} - doc.keys()
        if missing:
            raise KeyError(", ".join(sorted(missing)))
        doc["model_fit"] = _model_from_document(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        import warnings

        warnings.warn(f"{SUPERNET_PREDICTOR.name}: unreadable accuracy predictor ({type(exc).__name__}: {exc}); "
                      "rerun scripts/fit_accuracy_predictor.py", stacklevel=2)
        return None
    return doc


def _model_from_document(doc: dict) -> SupernetAccuracyModel:
    coef = np.asarray(doc["coef"], dtype=np.float64)
    alpha = np.asarray(doc["kernel_alpha"], dtype=np.float64)
    if alpha.size:
        n_priors = len(doc.get("earlier_weights", []))
        prior = np.asarray(doc["kernel_prior"], dtype=int) if n_priors else None
        X = config_features(doc["kernel_configs"], doc["width_mult"], doc["num_classes"], prior, n_priors)
        if len(X) != alpha.size or coef.size != X.shape[1] + 1:
            raise ValueError(f"{alpha.size} kernel weights and {coef.size} linear weights for {len(X)} configs of "
                             f"{X.shape[1]} features")
        mean, scale = _standardisation(X)
        anchors = _standardise(X, mean, scale)
    else:
        mean = scale = anchors = np.zeros((0,))
    for arr in (coef, alpha, mean, scale, anchors):
        arr.flags.writeable = False
    return SupernetAccuracyModel(coef, mean, scale, anchors, alpha, float(doc["kernel_gamma"]))


def supernet_top1(doc: dict, a: ConfigArrays, macs: np.ndarray) -> np.ndarray:
    """Predicted top-1 (%) of configs ``a`` (their MACs given) with the fitted ``doc``."""
    return doc["model_fit"](supernet_features(a, macs, n_priors=len(doc.get("earlier_weights", []))))


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a between two score vectors."""
    i, j = np.triu_indices(len(a), 1)
    s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return float(s.sum() / len(s))
