"""Where the repository's data folders are: the one place that knows.

The app runs from a checkout (``make`` installs it editable, ``pip install -e .``), so
the bundled data stays at the repository root beside the ``app`` package:

- ``pretrained/``: weights, predictors, latency tables, calibration images, model card;
- ``assets/``: sample images and the labelled measurement set.

Everything in ``app/`` (and the scripts and benchmarks) builds its data paths from
these constants instead of counting ``parents[...]`` from its own file.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository checkout (the folder that holds ``app/``, ``pretrained/`` and ``assets/``)."""

PRETRAINED = ROOT / "pretrained"
"""Bundled weights, predictors, latency tables, calibration images and the model card."""

ASSETS = ROOT / "assets"
"""Bundled sample images (``assets/samples``) and the labelled measurement set (``assets/measure``)."""
