"""Configs as numpy arrays, for batched predictors (one row per config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from app.space import EXPAND_CHOICES, KERNEL_CHOICES, MAX_DEPTH, NUM_BLOCKS, NUM_STAGES, SubnetConfig

K_INDEX = {k: i for i, k in enumerate(KERNEL_CHOICES)}
E_INDEX = {e: i for i, e in enumerate(EXPAND_CHOICES)}


@dataclass(frozen=True)
class ConfigArrays:
    """N configs: kernel and expand indices (N, 20), depths (N, 5), resolutions (N,), active mask (N, 20)."""

    k_idx: np.ndarray
    e_idx: np.ndarray
    d: np.ndarray
    r: np.ndarray
    active: np.ndarray

    def __len__(self) -> int:
        return int(self.r.shape[0])


def encode(cfgs: Sequence[SubnetConfig]) -> ConfigArrays:
    ks = np.array([c.ks for c in cfgs], dtype=np.int64).reshape(-1, NUM_BLOCKS)
    es = np.array([c.e for c in cfgs], dtype=np.int64).reshape(-1, NUM_BLOCKS)
    d = np.array([c.d for c in cfgs], dtype=np.int64).reshape(-1, NUM_STAGES)
    r = np.array([c.r for c in cfgs], dtype=np.int64)
    return from_values(ks, es, d, r)


_K_LUT = np.zeros(8, dtype=np.int64)  # kernel size -> index among KERNEL_CHOICES
_E_LUT = np.zeros(7, dtype=np.int64)  # expand ratio -> index among EXPAND_CHOICES
for _v, _i in K_INDEX.items():
    _K_LUT[_v] = _i
for _v, _i in E_INDEX.items():
    _E_LUT[_v] = _i
_POS = np.arange(NUM_BLOCKS) % MAX_DEPTH  # position of each block in its stage


def from_values(ks: np.ndarray, es: np.ndarray, d: np.ndarray, r: np.ndarray) -> ConfigArrays:
    """From raw value arrays (ks, e in choices; d per stage; r in pixels)."""
    active = _POS[None, :] < np.repeat(d, MAX_DEPTH, axis=1)
    return ConfigArrays(_K_LUT[ks], _E_LUT[es], d.astype(np.int64), r.astype(np.int64), active)


def ofa_features(a: ConfigArrays) -> np.ndarray:
    """OFA's 128-d accuracy-predictor encoding (tutorial ``spec2feats``): one-hot kernel (60),
    one-hot expand (60), both zero for skipped blocks, one-hot of (r - 112) // 16 (8)."""
    n = len(a)
    feats = np.zeros((n, 128), dtype=np.float32)
    rows = np.arange(n)[:, None]
    blocks = np.arange(NUM_BLOCKS)[None, :] * 3
    feats[rows, blocks + a.k_idx] = a.active
    feats[rows, 60 + blocks + a.e_idx] = a.active
    feats[np.arange(n), 120 + (a.r - 112) // 16] = 1.0
    return feats
