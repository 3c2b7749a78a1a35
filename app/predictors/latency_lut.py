"""Latency from per-layer lookup tables: OFA's published Note10 tables and tables measured here.

A table maps layer keys (OFA's format, e.g.
``expanded_conv-input:14x14x136-output:14x14x136-expand:408-kernel:3-stride:1-idskip:1-se:1-hs:1``)
to milliseconds at one input resolution; a network's latency is the sum over its layers
(stem ``Conv``, every block, ``Conv_1``, ``AvgPool2D``, ``Conv_2``, ``Logits``), as in OFA's
``LatencyEstimator``. Between tabled resolutions the latency is interpolated linearly;
outside them none is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.predictors.encoding import ConfigArrays
from app.space import (
    EXPAND_CHOICES,
    KERNEL_CHOICES,
    MAX_DEPTH,
    NUM_BLOCKS,
    STAGES,
    Widths,
    _conv_out,
    middle_channels,
)


def _shape(*dims: int) -> str:
    return "x".join(str(d) for d in dims)


def layer_keys(r: int, width_mult: float = 1.2, num_classes: int = 1000) -> tuple[list[str], list[list[list[str]]]]:
    """Keys of the fixed layers, and of every (block, kernel, expand) choice, at resolution r."""
    w = Widths.of(width_mult)
    f = _conv_out(r, 2)
    fixed = [
        f"Conv-input:{_shape(r, r, 3)}-output:{_shape(f, f, w.stem)}",
        f"expanded_conv-input:{_shape(f, f, w.stem)}-output:{_shape(f, f, w.first_block)}-expand:{w.stem}"
        f"-kernel:3-stride:1-idskip:{int(w.stem == w.first_block)}-se:0-hs:0",
    ]
    blocks: list[list[list[str]]] = []
    in_ch = w.first_block
    for stage, spec in enumerate(STAGES):
        out_ch = w.stages[stage]
        for j in range(MAX_DEPTH):
            stride = spec.stride if j == 0 else 1
            out = _conv_out(f, stride)
            per_k = []
            for k in KERNEL_CHOICES:
                per_k.append([
                    f"expanded_conv-input:{_shape(f, f, in_ch)}-output:{_shape(out, out, out_ch)}-expand:{middle_channels(in_ch, e)}"
                    f"-kernel:{k}-stride:{stride}-idskip:{int(j > 0)}-se:{int(spec.use_se)}-hs:{int(spec.act == 'h_swish')}"
                    for e in EXPAND_CHOICES
                ])
            blocks.append(per_k)
            f, in_ch = out, out_ch
    # the final feature map size does not depend on depth (strides are in the first blocks)
    fixed += [
        f"Conv_1-input:{_shape(f, f, in_ch)}-output:{_shape(f, f, w.final_expand)}",
        f"AvgPool2D-input:{_shape(f, f, w.final_expand)}-output:{_shape(1, 1, w.final_expand)}",
        f"Conv_2-input:{_shape(1, 1, w.final_expand)}-output:{_shape(1, 1, w.feature_mix)}",
        f"Logits-input:{_shape(1, 1, w.feature_mix)}-output:{num_classes}",
    ]
    return fixed, blocks


@dataclass(frozen=True)
class CompiledTable:
    """One resolution's table as arrays: fixed latency and (20, 3, 3) block latencies."""

    r: int
    fixed: float
    blocks: np.ndarray


def compile_table(r: int, table: dict[str, float], name: str, width_mult: float = 1.2, num_classes: int = 1000) -> CompiledTable:
    fixed_keys, block_keys = layer_keys(r, width_mult, num_classes)
    try:
        fixed = float(sum(float(table[k]) for k in fixed_keys))
        arr = np.array([[[float(table[k]) for k in per_e] for per_e in per_k] for per_k in block_keys], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"latency table {name} at {r}px lacks layer {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"latency table {name} at {r}px has a non-numeric entry ({exc})") from None
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not np.isfinite(fixed):
        raise ValueError(f"latency table {name} at {r}px has negative or non-finite entries")
    arr.setflags(write=False)
    return CompiledTable(r, fixed, arr)


class LatencyTable:
    """Latency (ms) of configs from per-resolution layer tables."""

    def __init__(self, name: str, tables: dict[int, dict[str, float]], width_mult: float = 1.2, num_classes: int = 1000,
                 scale: float = 1.0, offset_ms: float = 0.0) -> None:
        if not tables:
            raise ValueError(f"latency table {name}: no resolutions")
        self.name = name
        self.compiled = {int(r): compile_table(int(r), t, name, width_mult, num_classes) for r, t in sorted(tables.items(), key=lambda kv: int(kv[0]))}
        self.resolutions = tuple(self.compiled)
        if not (np.isfinite(scale) and scale > 0 and np.isfinite(offset_ms)):
            raise ValueError(f"latency table {name}: correction must have a positive scale and a finite offset")
        self.scale, self.offset_ms = float(scale), float(offset_ms)  # end-to-end = scale * sum of layers + offset
        self._grid, self._fixed, self._blocks = self._dense()

    def _dense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fixed (R,) and block (R, 20, 3, 3) latencies at every resolution of the space inside the
        tabled range (interpolated once: the interpolation is linear in the table entries)."""
        rs = np.array(self.resolutions)
        fixed = np.array([t.fixed for t in self.compiled.values()])
        blocks = np.stack([t.blocks for t in self.compiled.values()])
        grid = np.arange(rs[0], rs[-1] + 1, 4)
        lo = np.clip(np.searchsorted(rs, grid, side="right") - 1, 0, len(rs) - 1)
        hi = np.minimum(lo + 1, len(rs) - 1)
        span = np.where(rs[hi] > rs[lo], rs[hi] - rs[lo], 1)
        f = np.where(rs[hi] > rs[lo], (grid - rs[lo]) / span, 0.0)
        dense_fixed = (1 - f) * fixed[lo] + f * fixed[hi]
        dense_blocks = (1 - f)[:, None, None, None] * blocks[lo] + f[:, None, None, None] * blocks[hi]
        for arr in (grid, dense_fixed, dense_blocks):
            arr.setflags(write=False)
        return grid, dense_fixed, dense_blocks

    @property
    def range(self) -> tuple[int, int]:
        return self.resolutions[0], self.resolutions[-1]

    def batch(self, a: ConfigArrays) -> np.ndarray:
        """Latency (ms) per config; NaN outside the tabled resolution range."""
        grid, fixed, blocks = self._grid, self._fixed, self._blocks
        out = np.full(len(a), np.nan)
        inside = (a.r >= grid[0]) & (a.r <= grid[-1]) & ((a.r - grid[0]) % 4 == 0)
        if not inside.any():
            return out
        ri = ((a.r[inside] - grid[0]) // 4).astype(np.intp)
        per_block = blocks[ri[:, None], np.arange(NUM_BLOCKS)[None, :], a.k_idx[inside], a.e_idx[inside]]
        out[inside] = self.scale * (fixed[ri] + (per_block * a.active[inside]).sum(axis=1)) + self.offset_ms
        return out

    def note(self, r: int) -> str:
        lo, hi = self.range
        if r < lo or r > hi:
            return f"{self.name} tables cover {lo}-{hi} px only; no latency at {r} px"
        if r in self.compiled:
            return ""
        below = max(x for x in self.resolutions if x < r)
        above = min(x for x in self.resolutions if x > r)
        return f"interpolated between the {below} and {above} px tables"
