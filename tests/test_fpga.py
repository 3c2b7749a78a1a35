"""The Ultra96-v2 FPGA target: published per-layer int8 latencies at 224 px (scripts/bundle_fpga.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import app.predictors as P
from app.predictors.latency_lut import layer_keys
from app.space import SubnetConfig

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "pretrained" / "latency" / "fpga_ultra96.json"
FPGA = ROOT.parent / "shared" / "reference" / "fpga-ultra96" / "blocks"


def _doc() -> dict:
    return json.loads(TABLE.read_text("utf-8"))


def test_bundled_json_has_every_layer_key():
    doc = _doc()
    assert set(doc) >= {"source", "label", "precision", "notes", "tables"}
    assert doc["precision"] == "int8"
    assert list(doc["tables"]) == ["224"]
    table = doc["tables"]["224"]
    fixed, blocks = layer_keys(224, 1.2)
    needed = fixed + [k for per_k in blocks for per_e in per_k for k in per_e]
    missing = [k for k in needed if k not in table]
    assert not missing, missing
    assert all(isinstance(v, float) and v >= 0 for v in table.values())
    assert table["AvgPool2D-input:7x7x1152-output:1x1x1152"] == 0.0
    assert all(v > 0 for k, v in table.items() if not k.startswith("AvgPool2D"))


def _avg_ms(folder: str) -> float:
    """Sum of 'Average Time (ms)' over the DPU Summary rows of one profiled layer."""
    rows = list(csv.reader((FPGA / folder / "profile_summary.csv").read_text("utf-8").splitlines()))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "DPU Summary")
    header = rows[start + 1]
    col = header.index("Average Time (ms)")
    total = 0.0
    for r in rows[start + 2:]:
        if not r or not r[0]:
            break
        total += float(r[col])
    return total


# (in channels, in side, out channels, stride, act, SE) of each stage's first block, w1.2 at 224 px
_STAGES = [(24, 112, 32, 2, "relu", False), (32, 56, 48, 2, "relu", True), (48, 28, 96, 2, "h_swish", False),
           (96, 14, 136, 1, "h_swish", True), (136, 14, 192, 2, "h_swish", True)]


def _hand_sum(k: int, e: int, d: int) -> float:
    total = (_avg_ms("Conv_in-3x224x224_out-24_k-3_act-relu")
             + _avg_ms("ResidualBlock-in_24x112x112-out_24-k_3-e_1-s_1-act_relu-use_se_False")
             + _avg_ms("Conv_in-192x7x7_out-1152_k-1_act-h_swish_shape")
             + _avg_ms("Conv_in-1152x1x1_out-1536_k-1_act-h_swish")
             + _avg_ms("Linear_in-1536_out-1000"))
    for c, side, o, s, act, se in _STAGES:
        total += _avg_ms(f"ResidualBlock-in_{c}x{side}x{side}-out_{o}-k_{k}-e_{e}-s_{s}-act_{act}-use_se_{se}")
        side_out = (side - 1) // s + 1
        rest = f"ResidualBlock-in_{o}x{side_out}x{side_out}-out_{o}-k_{k}-e_{e}-s_1-act_{act}-use_se_{se}"
        total += (d - 1) * _avg_ms(rest)
    return total


@pytest.mark.skipif(not FPGA.is_dir(), reason="needs ../shared/reference/fpga-ultra96")
def test_totals_equal_hand_sum_of_profiles():
    big, small = SubnetConfig.largest(224), SubnetConfig.smallest(224)
    got = P.predict_batch([big, small], "ultra96")["latency_ms"]
    assert got[0] == pytest.approx(_hand_sum(7, 6, 4), abs=1e-6)
    assert got[1] == pytest.approx(_hand_sum(3, 3, 2), abs=1e-6)


def test_latency_monotone_largest_over_smallest():
    big, small = P.predict_batch([SubnetConfig.largest(224), SubnetConfig.smallest(224)], "ultra96")["latency_ms"]
    assert big > small > 0


def test_224_gives_number_other_resolutions_none_with_note():
    cfg = SubnetConfig.largest(224)
    at224 = P.predict(cfg, "ultra96").latency
    assert at224.value is not None and at224.value > 0
    assert at224.kind == "published" and "Pilot-Khadka" in at224.source
    at160 = P.predict(cfg.replace(r=160), "ultra96").latency
    assert at160.value is None
    assert "224" in at160.note and "160" in at160.note


def test_target_listed_as_published():
    # app.predictors.hardware_targets (the package root `app` does not re-export it)
    targets = {t.name: t for t in P.hardware_targets()}
    assert "ultra96" in targets
    t = targets["ultra96"]
    assert t.kind == "published"
    assert t.resolutions == (224, 224)
    assert "Ultra96" in t.label
