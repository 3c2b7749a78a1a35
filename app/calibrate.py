"""Batch-norm re-estimation for extracted subnets.

A subnet's BN statistics sliced from the supernet describe the supernet's activations,
not the subnet's; OFA re-estimates them on 2,000 training images
(``set_running_statistics``): every BN layer normalises with the current batch's
statistics, and its running statistics become the (sample-weighted) average of the
batch means and of the biased batch variances.

:func:`recalibrate_bn` is that method for any model. :func:`recalibrate_fast` applies
it to a small bundled set of training images, preprocessed once per resolution: the
interactive path of the app. Those images are chosen, not drawn:
:func:`bn_input_moments` and :func:`herd` pick the few training images whose BN-input
statistics average closest to those of many (``scripts/select_calibration_images.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FAST_CALIBRATION_IMAGES = 36  # what the largest subnet at r=224 gets (0.95 s here, idle); smaller subnets get more
FAST_CALIBRATION_MAX_IMAGES = 96  # the bundled herded set
_CACHE_LIMIT = 4  # resolutions kept preprocessed (each ~58 MB at r=224: all 96 bundled images)


class _Stats:
    __slots__ = ("mean", "var", "count")

    def __init__(self) -> None:
        self.mean: Tensor | None = None
        self.var: Tensor | None = None
        self.count = 0

    def update(self, mean: Tensor, var: Tensor, n: int) -> None:
        if self.mean is None:
            self.mean, self.var = mean * n, var * n
        else:
            self.mean += mean * n
            self.var += var * n
        self.count += n


@contextmanager
def _batch_statistics(model: nn.Module) -> Iterator[dict[nn.BatchNorm2d, _Stats]]:
    stats: dict[nn.BatchNorm2d, _Stats] = {}
    handles = []

    def make_forward(bn: nn.BatchNorm2d, st: _Stats):
        def forward(x: Tensor) -> Tensor:
            # training-mode batch norm with momentum 1 normalises with the batch's mean and
            # biased variance and leaves mean / unbiased variance in the buffers we pass
            c = x.size(1)
            mean = torch.zeros(c, dtype=x.dtype)
            var = torch.ones(c, dtype=x.dtype)
            y = F.batch_norm(x, mean, var, bn.weight, bn.bias, True, 1.0, bn.eps)
            n = x.numel() // c
            st.update(mean, var * ((n - 1) / n), x.size(0))
            return y

        return forward

    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            stats[m] = _Stats()
            m.forward = make_forward(m, stats[m])  # type: ignore[method-assign]
            handles.append(m)
    try:
        yield stats
    finally:
        for m in handles:
            del m.forward


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor | tuple]) -> int:
    """Re-estimate every BatchNorm2d's running statistics on ``batches`` (OFA's method).

    ``batches`` yields image tensors or (images, labels) pairs. Returns the number of
    images used. Mutates ``model`` (pass an extracted subnet, never a shared model).
    """
    was_training = model.training
    model.eval()
    with _batch_statistics(model) as stats:
        for batch in batches:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(images)
    n = 0
    for bn, st in stats.items():
        if st.count:
            bn.running_mean.copy_(st.mean / st.count)
            bn.running_var.copy_(st.var / st.count)
            n = st.count
    model.train(was_training)
    return n


# --------------------------------------------------------------------------- fast path
_lock = threading.Lock()
_cache: "OrderedDict[tuple, Tensor]" = OrderedDict()


def calibration_dir() -> Path:
    from app.paths import PRETRAINED

    return PRETRAINED / "calibration"


def calibration_files(folder: Path | None = None) -> list[Path]:
    """The bundled calibration images in herding order (file names start with the rank), so
    that any prefix is itself a good set."""
    folder = Path(folder) if folder is not None else calibration_dir()
    return sorted(folder.glob("*.jpg")) if folder.is_dir() else []


def calibration_batch(r: int, mean, std, n: int = FAST_CALIBRATION_IMAGES, folder: Path | None = None) -> Tensor:
    """The first ``n`` bundled calibration images preprocessed for resolution ``r`` (the whole set is
    preprocessed once per resolution and cached; read-only)."""
    from app.data import eval_transform, load_image

    folder = Path(folder) if folder is not None else calibration_dir()
    key = (str(folder), r, tuple(mean), tuple(std))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key][:n]
    files = calibration_files(folder)
    if not files:
        raise FileNotFoundError(f"calibration images: none found in {folder}")
    tf = eval_transform(r, mean, std)
    batch = torch.stack([tf(load_image(p)) for p in files]).contiguous(memory_format=torch.channels_last)
    with _lock:
        _cache[key] = batch
        while len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    return batch[:n]


_stats_lock = threading.Lock()
_stats: "OrderedDict[tuple, tuple[Tensor, ...]]" = OrderedDict()
STATS_CACHE_ENTRIES = 256  # re-estimated statistics kept per process (largest subnet: ~100 KB each)


def fast_calibration_size(cfg, width_mult: float, num_classes: int) -> int:
    """How many bundled images the fast path re-estimates ``cfg``'s statistics on: the largest subnet at
    r=224 gets ``FAST_CALIBRATION_IMAGES``; a config with fewer MACs gets proportionally more, at most
    the ``FAST_CALIBRATION_MAX_IMAGES`` bundled (small subnets take longer per MAC, so the cap keeps their time
    near the largest's)."""
    from app.costs import count_macs

    n = int(_image_budget_macs(width_mult, num_classes) // count_macs(cfg, width_mult, num_classes))
    return max(FAST_CALIBRATION_IMAGES, min(FAST_CALIBRATION_MAX_IMAGES, n))


@lru_cache(maxsize=8)
def _image_budget_macs(width_mult: float, num_classes: int) -> int:
    """MACs of ``FAST_CALIBRATION_IMAGES`` images through the largest subnet at r=224: the fast path's budget."""
    from app.costs import count_macs
    from app.space import SubnetConfig

    return FAST_CALIBRATION_IMAGES * count_macs(SubnetConfig.largest(224), width_mult, num_classes)


def _stats_key(card, cfg, n: int, chunk: int) -> tuple | None:
    """Cache key of a re-estimation: the weights' sha256 and the (normalised) config; None for unhashed weights."""
    sha = getattr(card, "sha256", "")
    return (sha, cfg.to_compact(), n, chunk) if sha else None


def _bns(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def recalibrate_fast(subnet: nn.Module, card, n: int | None = None, chunk: int | None = None,
                     features_out: list | None = None) -> int:
    """Re-estimate a subnet's BN statistics on ``n`` bundled training images at its resolution.

    The images are the first ``n`` of the bundled herded set (:func:`calibration_files`;
    by default :func:`fast_calibration_size` of them) and go through channels-last as one batch
    (``chunk`` images per batch of OFA's method; default all ``n``: small chunks normalise with
    noisy per-chunk statistics, -5 to -20 pp). Measured (full val, ``benchmarks/calibration_size.py``),
    the largest subnet at r=224 against OFA's 2,000-image re-estimation: on the v6 weights -0.54 pp
    with the first 20 herded images, -0.15 with 24 and 28, -0.3 with 32 and 40; on v7's weights and
    images -0.76 with 24, -0.71 with 28, -0.66 with 32, -0.41 with 36, -0.36 with 40; hence 36. The
    d3 e4 k3 subnet at r=192 (v7): -0.64 with 40, -0.31 with 48, -0.03 with 56, -0.3 with 64-80; hence
    at most 56 (time per image follows MACs only roughly: small subnets cost more than their share). On v8's
    weights the middle subnets at r=128 needed more (d4 e4 k5 / d3 e6 k5 / d3 e4 k3: -0.79 / -0.76 / -0.59 pp
    with 56, -0.13 / -0.18 / -0.03 with 72, +0.18 / -0.13 / +0.00 with 96, in 0.37-0.56 s); hence at most 96.

    ``features_out``: when given and the statistics are computed now (not restored from the cache) in one batch,
    the penultimate features of the images (``n`` x D, equal to the eval-mode ones afterwards) are appended to it,
    so that :mod:`app.open_world` gets its per-subnet reference without another forward pass.

    The result depends only on the weights (``card.sha256``) and the config, so it is
    kept in a bounded process-wide cache: a config any session has seen before (a
    preset, a shared link, a slider moved back) is restored in milliseconds.
    """
    cfg = subnet.config
    if n is None:
        n = fast_calibration_size(cfg, card.width_mult, card.num_classes)
    chunk = chunk or n
    key = _stats_key(card, cfg, n, chunk)
    if key is not None:
        with _stats_lock:
            cached = _stats.get(key)
            if cached is not None:
                _stats.move_to_end(key)
        if cached is not None:
            with torch.no_grad():
                for bn, (mean, var) in zip(_bns(subnet), zip(cached[0::2], cached[1::2])):
                    bn.running_mean.copy_(mean)
                    bn.running_var.copy_(var)
            return n
    batch = calibration_batch(cfg.r, card.mean, card.std, n)
    captured: list[Tensor] = []
    head = getattr(subnet, "feature_mix", None) if features_out is not None else None
    hook = head.register_forward_hook(lambda _m, _i, out: captured.append(out.flatten(1))) if head is not None else None
    try:
        used = recalibrate_bn(subnet, batch.split(chunk))
    finally:
        if hook is not None:
            hook.remove()
    if len(captured) == 1:  # one batch: its statistics are the final ones, so these are the eval-mode features
        features_out.append(captured[0])
    if key is not None:
        flat = tuple(t.detach().clone() for bn in _bns(subnet) for t in (bn.running_mean, bn.running_var))
        with _stats_lock:
            _stats[key] = flat
            while len(_stats) > STATS_CACHE_ENTRIES:
                _stats.popitem(last=False)
    return used


def cached_statistics() -> int:
    """How many subnets' re-estimated statistics the process-wide cache holds."""
    with _stats_lock:
        return len(_stats)


def has_cached_statistics(card, cfg) -> bool:
    """Whether :func:`recalibrate_fast` (default image count) would serve ``cfg`` on these weights from the cache."""
    n = fast_calibration_size(cfg, card.width_mult, card.num_classes)
    key = _stats_key(card, cfg, n, n)
    with _stats_lock:
        return key is not None and key in _stats


def clear_statistics_cache() -> None:
    """Forget every cached re-estimation (benchmarks time the uncached path with it)."""
    with _stats_lock:
        _stats.clear()


# --------------------------------------------------------------------------- choosing the images
@torch.no_grad()
def bn_input_moments(model: nn.Module, batches: Iterable[Tensor]) -> Tensor:
    """Per image, the per-channel mean and mean square of every BatchNorm2d's input, standardised.

    ``model`` runs in eval mode with its BN statistics as they are (pass one re-estimated on
    many images). A batch's BN statistics are exactly the average of its images' rows here
    (same image size), so a set of images whose rows average to the pool's average gives
    the pool's statistics. Columns are centred on the pool, means scaled by the pool's
    standard deviation, mean squares by its variance, and each layer weighted equally.
    Returns an images × features tensor.
    """
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    rows: list[list[Tensor]] = [[] for _ in bns]

    def hook_for(j: int):
        def hook(_module, inputs) -> None:
            x = inputs[0]
            rows[j].append(torch.cat([x.mean((2, 3)), x.square().mean((2, 3))], 1))

        return hook

    handles = [bn.register_forward_pre_hook(hook_for(j)) for j, bn in enumerate(bns)]
    try:
        for batch in batches:
            model(batch)
    finally:
        for h in handles:
            h.remove()
    out = []
    for layer in rows:
        f = torch.cat(layer)
        c = f.shape[1] // 2
        mean, square = f[:, :c], f[:, c:]
        mu, sq = mean.mean(0), square.mean(0)
        var = (sq - mu * mu).clamp_min(1e-8)
        out.append(torch.cat([(mean - mu) / var.sqrt(), (square - sq) / var], 1) / (2 * c) ** 0.5)
    return torch.cat(out, 1)


def herd(features: Tensor, k: int) -> list[int]:
    """Indices of ``k`` rows of ``features`` chosen greedily so that the mean of the first
    ``j`` chosen rows stays close to the mean of all rows, for every ``j`` (kernel herding
    with a linear kernel; Chen, Welling and Smola, UAI 2010). For the bundled set the
    squared error of the first 10 / 20 / 30 / 40 is 5-7 times below random sets' of the
    same size (``pretrained/calibration/selection.json``)."""
    if not 0 < k <= len(features):
        raise ValueError(f"k must be in 1..{len(features)}; got {k}")
    f = features - features.mean(0)
    norms = f.square().sum(1)
    total = torch.zeros(f.shape[1], dtype=f.dtype)
    chosen: list[int] = []
    for _ in range(k):
        # ||total + f_i||^2 without forming it: 2 f_i . total + ||f_i||^2 (+ a constant)
        score = 2 * (f @ total) + norms
        if chosen:
            score[chosen] = float("inf")
        i = int(score.argmin())
        chosen.append(i)
        total += f[i]
    return chosen
