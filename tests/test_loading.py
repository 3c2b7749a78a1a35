"""Loading supernets: project format round trip, integrity checks, hostile checkpoints."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

import app
from app.weights import SupernetLoadError, load_supernet, placeholder_supernet, save_supernet


@pytest.fixture(scope="module")
def small_net():
    return placeholder_supernet(1.0, seed=1)


def test_project_format_round_trip(small_net, tmp_path):
    weights = save_supernet(small_net, tmp_path / "net")
    card = json.loads((tmp_path / "net.json").read_text())
    assert card["sha256"] and card["width_mult"] == 1.0 and len(card["classes"]) == 10
    loaded = load_supernet(weights)
    assert loaded.card.sha256 == card["sha256"]
    cfg = app.SubnetConfig.random(5)
    x = torch.randn(1, 3, cfg.r, cfg.r)
    with torch.no_grad():
        assert torch.equal(loaded.extract(cfg)(x), small_net.extract(cfg)(x))
    # the stem, the .json and the directory all name the same supernet
    assert load_supernet(tmp_path / "net.json").card.sha256 == card["sha256"]
    assert load_supernet(tmp_path).card.sha256 == card["sha256"]


def test_half_precision_weights_load_as_float32(small_net, tmp_path):
    full = save_supernet(small_net, tmp_path / "full")
    half = save_supernet(small_net, tmp_path / "half", dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded = load_supernet(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    cfg = app.SubnetConfig.random(7)
    x = torch.randn(1, 3, cfg.r, cfg.r)
    with torch.no_grad():
        want, got = small_net.extract(cfg)(x), loaded.extract(cfg)(x)
    assert not torch.equal(got, want)  # rounded ...
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)  # ... by float16's precision only


def test_bundled_directory_stays_under_60_mb():
    from app.weights import PRETRAINED_DIR

    total = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob("*") if p.is_file())
    assert total < 60e6, f"pretrained/ holds {total / 1e6:.1f} MB; issue 3 caps it at 60 MB"


def test_modified_or_truncated_weights_are_refused(small_net, tmp_path):
    weights = save_supernet(small_net, tmp_path / "net")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(SupernetLoadError, match="sha256 mismatch"):
        load_supernet(weights)
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(SupernetLoadError, match="modified or truncated"):
        load_supernet(weights)


def test_bad_card(small_net, tmp_path):
    save_supernet(small_net, tmp_path / "net")
    (tmp_path / "net.json").write_text("{not json")
    with pytest.raises(SupernetLoadError, match="invalid JSON"):
        load_supernet(tmp_path / "net.safetensors")
    (tmp_path / "net.json").unlink()
    with pytest.raises(SupernetLoadError, match="card"):
        load_supernet(tmp_path / "net.safetensors")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(SupernetLoadError, match="no such file"):
        load_supernet(tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(SupernetLoadError, match="empty"):
        load_supernet(tmp_path / "empty.pth")


def test_truncated_and_garbage_checkpoints(reference_pair, tmp_path):
    _, path = reference_pair
    data = Path(path).read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(SupernetLoadError, match="not a loadable OFA checkpoint"):
        load_supernet(tmp_path / "trunc.pth")
    (tmp_path / "garbage.pth").write_bytes(os.urandom(4096))
    with pytest.raises(SupernetLoadError):
        load_supernet(tmp_path / "garbage.pth")


def test_wrong_shape_state_dict(reference_pair, tmp_path):
    ref, _ = reference_pair
    state = ref.state_dict()
    key = "blocks.3.conv.point_linear.conv.conv.weight"
    state[key] = torch.zeros(3, 3, 1, 1)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(SupernetLoadError, match="shape"):
        load_supernet(tmp_path / "bad.pth")
    state = {"first_conv.conv.weight": torch.zeros(24, 3, 3, 3), "something.else": torch.zeros(1)}
    torch.save({"state_dict": state}, tmp_path / "other.pth")
    with pytest.raises(SupernetLoadError, match="not an OFA-MBv3 supernet"):
        load_supernet(tmp_path / "other.pth")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = marker
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(SupernetLoadError, match="refused"):
        load_supernet(path)
    # also inside a torch.save zip container
    torch.save({"state_dict": {"x": _Evil()}}, tmp_path / "evil2.pth")
    with pytest.raises(SupernetLoadError):
        load_supernet(tmp_path / "evil2.pth")
    assert not marker.exists(), "pickled code ran"


def test_default_supernet_loads_and_is_labelled():
    net = load_supernet()
    assert net.card.num_classes == 10
    if net.card.placeholder:
        assert "PLACEHOLDER" in net.card.name and "NOT TRAINED" in net.card.provenance
    else:
        assert net.card.sha256 and "trained by this project" in net.card.provenance


def test_model_card_measures_the_bundled_weights():
    """The bundled model card (shown on About) was measured on the bundled weights, every cell, its fast-path
    column with the image counts the app uses now, and its Markdown table names the same weights."""
    import json
    from pathlib import Path

    from app.calibrate import fast_calibration_size
    from app.space import SubnetConfig

    net = load_supernet()
    if net.card.placeholder:
        pytest.skip("no trained weights bundled")
    pretrained = Path(__file__).resolve().parents[1] / "pretrained"
    card = json.loads((pretrained / "model_card.json").read_text("utf-8"))
    assert card["sha256"] == net.card.sha256, "rerun scripts/evaluate_supernet.py"
    assert card["cells_measured"] == card["cells_total"] == len(card["rows"])
    assert all(row["sha256"] == net.card.sha256 for row in card["rows"])
    assert all(row["fast_images"] == fast_calibration_size(SubnetConfig.parse(row["config"]), net.card.width_mult,
                                                           net.card.num_classes)
               for row in card["rows"]), "rerun scripts/evaluate_supernet.py --refresh-fast"
    assert f"weights sha256 {net.card.sha256[:12]}" in (pretrained / "MODEL_CARD.md").read_text("utf-8")


def test_training_progress_joins_each_run_with_its_measured_cells(tmp_path):
    """Accuracy after each training run (About page): the runs of the bundled weights' lineage in order, cumulative
    hours, the model card's top-1 for the current weights; runs without measured cells are left out."""
    from dataclasses import replace

    from app.training_progress import MODEL_CARD_ROWS, training_progress, training_runs

    card = load_supernet().card
    if card.placeholder:
        pytest.skip("no trained weights bundled")
    runs = training_runs(card)
    assert runs[-1]["sha256"] == card.sha256 and len(runs) == len(card.extra["lineage"]) + 1
    progress = training_progress(card)
    card_rows = [json.loads(line) for line in MODEL_CARD_ROWS.read_text("utf-8").splitlines()]
    measured = {r["sha256"] for r in card_rows}
    with_cells = [r["recipe"] for r in runs if r["sha256"] in measured]  # every bundled run; not v13, averaged unbundled
    assert list(progress["run"].unique()) == with_cells and with_cells[-1] == runs[-1]["recipe"] and len(with_cells) >= 2
    for _, rows in progress.groupby("subnet"):
        assert rows["hours"].is_monotonic_increasing and rows["hours"].nunique() == len(rows)
    final = {(r["subnet"], r["r"]): r["top1_bn2000"] for r in card_rows if r["sha256"] == card.sha256}
    last = progress[progress["run"] == runs[-1]["recipe"]].set_index("subnet")["top1"]
    assert last["largest (d4 e6 k7), r=224"] == final[("largest (d4 e6 k7)", 224)]
    assert abs(progress["hours"].max() - sum(r["hours"] for r in runs)) < 0.01

    only_current = tmp_path / "rows.jsonl"
    only_current.write_text("".join(json.dumps(r) + "\n" for r in card_rows if r["sha256"] == card.sha256), "utf-8")
    assert set(training_progress(card, only_current)["run"]) == {runs[-1]["recipe"]}
    assert training_progress(card, tmp_path / "missing.jsonl").empty
    (tmp_path / "broken.jsonl").write_text('{"sha256": "x"}\nnot json\n' + only_current.read_text("utf-8"), "utf-8")
    assert len(training_progress(card, tmp_path / "broken.jsonl")) == 2
    assert training_progress(replace(card, extra={}), only_current)["hours"].tolist() == [0.0, 0.0]


def test_the_card_is_frozen_and_torch_free():
    """A loaded supernet's card cannot be changed in place (every session shares it); a changed copy is a new card.
    The card module imports nothing but the standard library."""
    import dataclasses

    import app

    card = app.load_supernet().card
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.sha256 = "0" * 64
    with pytest.raises(TypeError):
        card.extra["recipe"] = {}
    other = card.replace(name="copy")
    assert other.name == "copy" and card.name != "copy" and other.sha256 == card.sha256
    import ast

    source = (Path(__file__).resolve().parents[1] / "app" / "card.py").read_text()
    imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "copy", "dataclasses", "types", "typing"}, imported
