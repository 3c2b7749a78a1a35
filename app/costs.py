"""MACs and parameter counts of subnets, by OFA's counting rules, computed from shapes.

OFA's ``count_net_flops`` counts multiply-accumulates of convolutions
(``C_in / groups * k * k * C_out * H_out * W_out``, bias excluded) and linear layers
(``in * out``); pooling, activations, BN and the SE gating multiply are free.
``count_parameters`` counts every parameter (conv and linear weights and biases, BN
affine weights). Both are evaluated here analytically, without building the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from app.space import (
    EXPAND_CHOICES,
    KERNEL_CHOICES,
    MAX_DEPTH,
    NUM_BLOCKS,
    RESOLUTION_CHOICES,
    BlockSpec,
    SubnetConfig,
    Widths,
    _conv_out,
    se_channels,
)


@dataclass(frozen=True)
class LayerCost:
    """One layer of a subnet: what it is, its MACs, parameters and tensor sizes (elements)."""

    name: str
    kind: str  # conv, dwconv, se, linear
    macs: int
    params: int
    in_elems: int
    out_elems: int


def _conv(name: str, kind: str, cin: int, cout: int, k: int, groups: int, out_hw: int, in_hw: int, bn: bool, bias: bool = False) -> LayerCost:
    macs = cin // groups * k * k * cout * out_hw * out_hw
    params = cin // groups * k * k * cout + (cout if bias else 0) + (2 * cout if bn else 0)
    return LayerCost(name, kind, macs, params, cin * in_hw * in_hw, cout * out_hw * out_hw)


def _block_layers(b: BlockSpec, prefix: str) -> list[LayerCost]:
    layers = []
    if b.mid_channels != b.in_channels or b.expand != 1:
        layers.append(_conv(f"{prefix}.expand", "conv", b.in_channels, b.mid_channels, 1, 1, b.in_size, b.in_size, True))
    layers.append(_conv(f"{prefix}.depthwise", "dwconv", b.mid_channels, b.mid_channels, b.kernel, b.mid_channels, b.out_size, b.in_size, True))
    if b.use_se:
        m = se_channels(b.mid_channels)
        layers.append(LayerCost(f"{prefix}.se", "se", 2 * b.mid_channels * m, 2 * b.mid_channels * m + m + b.mid_channels,
                                b.mid_channels * b.out_size * b.out_size, b.mid_channels * b.out_size * b.out_size))
    layers.append(_conv(f"{prefix}.project", "conv", b.mid_channels, b.out_channels, 1, 1, b.out_size, b.out_size, True))
    return layers


def layer_costs(cfg: SubnetConfig, width_mult: float = 1.2, num_classes: int = 1000) -> list[LayerCost]:
    """Every counted layer of the subnet ``cfg`` at its resolution."""
    w = Widths.of(width_mult)
    r = cfg.r
    s = _conv_out(r, 2)
    layers = [_conv("stem", "conv", 3, w.stem, 3, 1, s, r, True)]
    layers.append(_conv("first_block.depthwise", "dwconv", w.stem, w.stem, 3, w.stem, s, s, True))
    layers.append(_conv("first_block.project", "conv", w.stem, w.first_block, 1, 1, s, s, True))
    specs = cfg.block_specs(width_mult)
    for b in specs:
        layers.extend(_block_layers(b, f"blocks.{b.index}"))
    last = specs[-1]
    layers.append(_conv("final_expand", "conv", last.out_channels, w.final_expand, 1, 1, last.out_size, last.out_size, True))
    layers.append(_conv("feature_mix", "conv", w.final_expand, w.feature_mix, 1, 1, 1, 1, False))
    layers.append(LayerCost("classifier", "linear", w.feature_mix * num_classes, w.feature_mix * num_classes + num_classes,
                            w.feature_mix, num_classes))
    return layers


def count_macs(cfg: SubnetConfig, width_mult: float = 1.2, num_classes: int = 1000) -> int:
    """Multiply-accumulates of one forward pass at ``cfg.r`` (OFA's ``count_net_flops``)."""
    return sum(layer.macs for layer in layer_costs(cfg, width_mult, num_classes))


def count_params(cfg: SubnetConfig, width_mult: float = 1.2, num_classes: int = 1000) -> int:
    """Parameters of the extracted subnet (OFA's ``count_parameters``)."""
    return sum(layer.params for layer in layer_costs(cfg, width_mult, num_classes))


# --------------------------------------------------------------------------- many configs at once
@lru_cache(maxsize=8)
def _cost_arrays(width_mult: float, num_classes: int) -> dict[str, np.ndarray]:
    """MACs, params and DRAM words per resolution: fixed part (R,) and blocks (R, 20, 3, 3)."""
    out = {}
    for field in ("macs", "params", "words"):
        out[field + "_fixed"] = np.zeros(len(RESOLUTION_CHOICES))
        out[field + "_blocks"] = np.zeros((len(RESOLUTION_CHOICES), NUM_BLOCKS, len(KERNEL_CHOICES), len(EXPAND_CHOICES)))

    def words(layer: LayerCost) -> int:
        return layer.params + layer.in_elems + layer.out_elems

    for ri, r in enumerate(RESOLUTION_CHOICES):
        for ki, k in enumerate(KERNEL_CHOICES):
            for ei, e in enumerate(EXPAND_CHOICES):
                layers = layer_costs(SubnetConfig.uniform(k, e, MAX_DEPTH, r), width_mult, num_classes)
                for field, fn in (("macs", lambda l: l.macs), ("params", lambda l: l.params), ("words", words)):
                    fixed = 0
                    for layer in layers:
                        if layer.name.startswith("blocks."):
                            out[field + "_blocks"][ri, int(layer.name.split(".")[1]), ki, ei] += fn(layer)
                        elif ki == 0 and ei == 0:
                            fixed += fn(layer)
                    if ki == 0 and ei == 0:
                        out[field + "_fixed"][ri] = fixed
    for v in out.values():
        v.setflags(write=False)
    return out


def cost_batch(a, field: str, width_mult: float, num_classes: int) -> np.ndarray:
    """Per-config ``field`` ("macs", "params" or "words": DRAM words moved) of many configs at once, by OFA's counting
    rules: ``a`` is an :class:`app.predictors.encoding.ConfigArrays` (its ``r``, ``k_idx``, ``e_idx``, ``active``)."""
    arrs = _cost_arrays(width_mult, num_classes)
    ri = (a.r - RESOLUTION_CHOICES[0]) // 4
    blocks = arrs[field + "_blocks"][ri[:, None], np.arange(NUM_BLOCKS)[None, :], a.k_idx, a.e_idx]
    return arrs[field + "_fixed"][ri] + (blocks * a.active).sum(axis=1)
