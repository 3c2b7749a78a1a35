"""Weight averaging ("model soup") of supernets: the mean of the inputs, inputs untouched, history kept, bad input refused."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import app
from app.train.average import average_supernets
from app.training_progress import training_runs
from app.weights import load_supernet, placeholder_supernet, save_supernet


def _run(net, recipe: str, sha: str, lineage: list[dict]):
    """``net`` dressed as the result of training run ``recipe`` that continued ``lineage``."""
    net.card = net.card.replace(sha256=sha, extra={"recipe": {"name": recipe}, "lineage": lineage, "phases_completed": ["p"],
                                                   "seconds_per_phase": {"p": 3600.0}})
    return net


@pytest.fixture(scope="module")
def lineage():
    """Three runs, each continuing the one before (as v11 -> v12 -> v13)."""
    a = _run(placeholder_supernet(1.0, seed=1), "run-a", "a" * 64, [])
    b_history = [{"sha256": "a" * 64, "recipe": "run-a", "phases_completed": ["p"], "seconds_per_phase": {"p": 3600.0}}]
    b = _run(placeholder_supernet(1.0, seed=2), "run-b", "b" * 64, b_history)
    c_history = [*b_history, {"sha256": "b" * 64, "recipe": "run-b", "phases_completed": ["p"], "seconds_per_phase": {"p": 3600.0}}]
    c = _run(placeholder_supernet(1.0, seed=3), "run-c", "c" * 64, c_history)
    return a, b, c


def test_every_weight_is_the_mean_and_the_inputs_are_untouched(lineage):
    before = [{k: v.clone() for k, v in n.state_dict().items()} for n in lineage]
    soup = average_supernets(lineage, "soup")
    for key, value in soup.state_dict().items():
        if value.is_floating_point():
            expected = sum(s[key].double() for s in before) / 3
            torch.testing.assert_close(value.double(), expected, rtol=1e-6, atol=1e-7)
    for net, state in zip(lineage, before):
        assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert not any(p.requires_grad for p in soup.parameters()) and not soup.training
    cfg = app.SubnetConfig.random(3)
    with torch.no_grad():
        assert soup.extract(cfg)(torch.randn(1, 3, cfg.r, cfg.r)).shape == (1, 10)


def test_the_history_of_every_ingredient_is_kept_once_and_costs_no_training_hours(lineage, tmp_path):
    soup = average_supernets(lineage, "soup")
    recipe = soup.card.extra["recipe"]
    assert recipe["name"] == "soup" and [i["recipe"] for i in recipe["ingredients"]] == ["run-a", "run-b", "run-c"]
    assert "run-a, run-b, run-c" in soup.card.provenance
    save_supernet(soup, tmp_path / "soup", dtype=torch.float16)
    loaded = load_supernet(tmp_path / "soup.safetensors")
    runs = training_runs(loaded.card)
    assert [r["recipe"] for r in runs] == ["run-a", "run-b", "run-c", "soup"]
    assert [round(r["hours"], 3) for r in runs] == [1.0, 1.0, 1.0, 0.0]
    assert runs[-1]["sha256"] == loaded.card.sha256


def test_supernets_that_do_not_match_are_refused(lineage):
    with pytest.raises(ValueError, match="at least two"):
        average_supernets(lineage[:1], "soup")
    with pytest.raises(ValueError, match="width"):
        average_supernets([lineage[0], placeholder_supernet(1.2, seed=1)], "soup")


def test_command_line_writes_a_loadable_average_and_reports_bad_input(lineage, tmp_path):
    paths = [save_supernet(n, tmp_path / f"in{i}") for i, n in enumerate(lineage[:2])]
    cli = [sys.executable, "-m", "app", "average", "--name", "soup", "--out", str(tmp_path / "soup")]
    done = subprocess.run([*cli, *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert load_supernet(tmp_path / "soup.safetensors").card.extra["recipe"]["name"] == "soup"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    done = subprocess.run([*cli, str(paths[0]), str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "error" in done.stderr and "Traceback" not in done.stderr
