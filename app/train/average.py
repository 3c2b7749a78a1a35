"""Uniform weight averaging of supernets from one training lineage (a "model soup", Wortsman et al., ICML 2022).

Runs that continue one another (v12 from v11, v13 from v12, ...) end near one another in weight space; the mean
of their weights is a supernet that can beat each of them, at no training cost. BatchNorm statistics are averaged
too, but every accuracy this project reports re-estimates them per subnet anyway.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from app.card import SupernetCard
from app.supernet import OFASupernet
from app.train.loop import lineage_of
from app.weights import freeze


def _merged_lineage(cards: Sequence[SupernetCard]) -> list[dict]:
    """Every run behind ``cards`` (given oldest first), oldest first, each once."""
    seen: set[str] = set()
    merged: list[dict] = []
    for card in cards:
        for run in lineage_of(card):
            key = run.get("sha256") or repr(run)
            if key not in seen:
                seen.add(key)
                merged.append(run)
    return merged


def average_supernets(nets: Sequence[OFASupernet], name: str) -> OFASupernet:
    """A new supernet whose every floating-point tensor is the mean of ``nets``' (given oldest first).

    The inputs are not modified. The result's card keeps the newest input's classes and normalisation; its
    ``extra`` records the ingredients (sha256 and recipe), and a lineage holding every run behind them, so the
    model card's hours and the accuracy predictor's pooled data still see the whole history. Raises
    ``ValueError`` unless there are at least two supernets of one width, class list and tensor layout.
    """
    if len(nets) < 2:
        raise ValueError(f"averaging needs at least two supernets; got {len(nets)}")
    t0 = time.perf_counter()
    first = nets[0]
    for i, net in enumerate(nets[1:], 2):
        if net.card.width_mult != first.card.width_mult:
            raise ValueError(f"supernet {i} has width {net.card.width_mult}, supernet 1 has {first.card.width_mult}")
        if list(net.card.classes) != list(first.card.classes):
            raise ValueError(f"supernet {i} classifies other classes than supernet 1")
    states = [net.state_dict() for net in nets]
    averaged: dict[str, torch.Tensor] = {}
    for key, ref in states[0].items():
        for i, state in enumerate(states[1:], 2):
            if key not in state or state[key].shape != ref.shape:
                raise ValueError(f"supernet {i}: tensor {key} missing or of another shape")
        if ref.is_floating_point():
            averaged[key] = (sum(s[key].double() for s in states) / len(states)).to(ref.dtype)
        else:  # counters such as num_batches_tracked
            averaged[key] = ref.clone()

    newest = nets[-1].card
    ingredients = [{"sha256": n.card.sha256, "recipe": ((n.card.extra or {}).get("recipe") or {}).get("name")} for n in nets]
    card = newest.replace(
        sha256="",
        provenance=(f"trained by this project on Imagenette: the uniform average of the weights of {len(nets)} runs ("
                    + ", ".join(str(i["recipe"]) for i in ingredients) + ")"),
        extra={
            "lineage": _merged_lineage([n.card for n in nets]),
            "recipe": {"name": name, "method": "uniform weight average (model soup, Wortsman et al. 2022)",
                       "ingredients": ingredients},
            "phases_completed": ["average"],
            "seconds_per_phase": {"average": time.perf_counter() - t0},
        },
    )
    out = OFASupernet(card)
    out.load_state_dict(averaged)
    return freeze(out)
