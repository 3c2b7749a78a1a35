"""The bundled supernet's accuracy after each training run, against the hours spent: the model card's story as data.

Each run that produced bundled weights is in the weights' card (``extra.lineage`` for the earlier ones, the card
itself for the current one: recipe, sha256, seconds per phase); ``pretrained/model_card_rows.jsonl`` keeps every
model-card cell measured on each of those weights (``scripts/evaluate_supernet.py``, full val, BN re-estimated on
2,000 training images). Joining the two gives top-1 against cumulative training hours.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from app.card import SupernetCard
from app.train.loop import lineage_of
from app.weights import PRETRAINED_DIR

MODEL_CARD_ROWS = PRETRAINED_DIR / "model_card_rows.jsonl"

# the targets: (model-card subnet name, resolution, target top-1 %)
TRACKED = (("largest (d4 e6 k7)", 224, 92.0), ("smallest (d2 e3 k3)", 128, 85.0))


def training_runs(card: SupernetCard) -> list[dict]:
    """The runs behind ``card``'s weights, oldest first: recipe name, sha256 of the weights it ended with, hours."""
    return [{"recipe": r.get("recipe") or card.name, "sha256": r["sha256"],
             "hours": sum(r.get("seconds_per_phase", {}).values()) / 3600} for r in lineage_of(card) if r.get("sha256")]


def training_progress(card: SupernetCard, rows_path: Path = MODEL_CARD_ROWS) -> pd.DataFrame:
    """Top-1 of the tracked subnets after each run with measured cells: one row per (run, subnet).

    Columns: ``run`` (recipe name), ``hours`` (cumulative wall-clock training hours at the end of the run), ``subnet``
    (name and resolution), ``top1`` (%), ``target`` (%). Empty when no run has measured cells (or there is no
    rows file); lines that are not model-card rows are skipped.
    """
    columns = ["run", "hours", "subnet", "top1", "target"]
    if not rows_path.is_file():
        return pd.DataFrame(columns=columns)
    measured: dict[tuple[str, str, int], float] = {}
    for line in rows_path.read_text("utf-8").splitlines():
        try:
            row = json.loads(line)
            measured[(row["sha256"], row["subnet"], row["r"])] = float(row["top1_bn2000"])
        except (ValueError, KeyError, TypeError):
            continue
    out, hours = [], 0.0
    for run in training_runs(card):
        hours += run["hours"]
        for name, r, target in TRACKED:
            top1 = measured.get((run["sha256"], name, r))
            if top1 is not None:
                out.append([run["recipe"], round(hours, 2), f"{name}, r={r}", top1, target])
    return pd.DataFrame(out, columns=columns)
