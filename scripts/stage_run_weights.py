"""Stage a training run's latest phase weights in git, in float16, so a later session can go on from them.

    python scripts/stage_run_weights.py runs/v8

A run directory (``python -m app train --out``) does not outlive the machine it ran on, and a run
can outlast a working session. This writes the run's newest ``phase-K-<name>`` weights to
``pretrained/staging/<recipe name>/`` at half precision (18.5 MB for w1.2, half the float32 size; v11 was
bundled from such a copy and scores the same), replacing whatever that run staged before, so ``pretrained/``
stays under 60 MB.
From there a later session either goes on with the run's next phase (``python -m app train --recipe
<its recipe> --continue-from pretrained/staging/<recipe name>/phase-K-<name>.safetensors``) or bundles it
(``scripts/bundle_supernet.sh pretrained/staging/<recipe name>``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from app.paths import ROOT
from app.weights import PRETRAINED_DIR, load_project_supernet, save_supernet

STAGING_DIR = PRETRAINED_DIR / "staging"


def latest_phase(run: Path) -> Path:
    """The run's newest ``phase-K-<name>.safetensors`` (highest K)."""
    phases = sorted(run.glob("phase-*.safetensors"), key=lambda p: int(p.name.split("-")[1]))
    if not phases:
        raise SystemExit(f"{run}: no phase weights yet (phase-K-<name>.safetensors)")
    return phases[-1]


def stage(run: Path) -> Path:
    weights = latest_phase(run)
    recipe = json.loads((run / "recipe.json").read_text("utf-8"))
    target = STAGING_DIR / recipe["name"]
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("phase-*"):
        old.unlink()
    net = load_project_supernet(weights)
    net.card.provenance += " (staged at float16)"
    return save_supernet(net, target / weights.stem, dtype=torch.float16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a `python -m app train --out` directory")
    out = stage(ap.parse_args().run)
    print(f"staged {out.relative_to(ROOT)} ({out.stat().st_size / 1e6:.1f} MB); commit it")


if __name__ == "__main__":
    main()
