"""Search, export round trips and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import app
from app.cli import main
from app.export import export_bytes
from app.search import SearchSettings, search

ROOT = Path(__file__).resolve().parent.parent


def test_search_meets_budgets_and_is_reproducible():
    for seed in range(3):
        res = search("note10", {"latency": 20, "macs": 300}, "imagenet", SearchSettings(generations=40, seed=seed))
        assert res.metrics["latency_ms"] <= 20 and res.metrics["macs"] <= 300e6
    a = search("gpu-v100-b64", {"latency": 30}, settings=SearchSettings(generations=30, seed=7))
    b = search("gpu-v100-b64", {"latency": 30}, settings=SearchSettings(generations=30, seed=7))
    assert a.config == b.config and a.accuracy == b.accuracy


def test_search_finds_known_optimum_of_synthetic_predictor():
    """Accuracy = number of kernel-7 blocks + resolution bonus; budget: at most 8 active kernel-7 blocks."""
    def scorer(a, keys):
        k7 = ((a.k_idx == 2) & a.active).sum(axis=1).astype(float)
        out = {"accuracy_imagenet_holdout": k7 + a.r / 1000.0, "latency_ms": k7}
        return {k: out[k] for k in keys}

    res = search("note10", {"latency": 8}, "imagenet",
                 SearchSettings(population=60, generations=150, seed=0, resolutions=(160, 224)), scorer=scorer)
    assert res.accuracy == pytest.approx(8 + 0.224)


def test_infeasible_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="infeasible"):
        search("note10", {"latency": 1.0}, settings=SearchSettings(generations=5))
    with pytest.raises(ValueError, match="budget"):
        search("note10", {"latency": -3}, settings=SearchSettings(generations=5))


def test_search_on_the_bundled_supernets_predictor():
    """Maximising the bundled supernet's predictor meets the budget and beats the smallest subnet; weights
    without a fitted predictor (an official checkpoint) get a clear error, not a NaN result."""
    from app.predictors import predict_batch
    from app.space import SubnetConfig

    card = app.load_supernet().card
    res = search("cpu-epyc-2core", {"latency": 8}, "supernet", SearchSettings(generations=60, seed=0), supernet_card=card)
    assert res.metrics["latency_ms"] <= 8 and np.isfinite(res.accuracy)
    smallest = predict_batch([SubnetConfig.smallest(128)], "cpu-epyc-2core", card.sha256, card.width_mult, card.num_classes)
    assert res.accuracy >= smallest["accuracy_supernet"][0]
    with pytest.raises(ValueError, match="no accuracy predictor"):
        search("note10", {"latency": 25}, "supernet", SearchSettings(generations=5),
               supernet_card=app.SupernetCard(1.2, ["x"] * 10, sha256="0" * 64))


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript", "pt2", "onnx"])
def test_export_round_trips(fmt, tmp_path):
    net = app.weights.placeholder_supernet(1.0, seed=2)
    sub = net.extract(app.SubnetConfig.random(11), calibrate=True)
    name, data, _, check = export_bytes(sub, net.card, fmt)  # verifies internally
    assert "checked against the live subnet" in check
    (tmp_path / name).write_bytes(data)
    x = torch.randn(1, 3, sub.config.r, sub.config.r)
    with torch.no_grad():
        ref = sub(x)
        if fmt == "torchscript":
            got = torch.jit.load(str(tmp_path / name))(x)
        elif fmt == "pt2":
            got = torch.export.load(str(tmp_path / name)).module()(x)
        elif fmt == "onnx":  # an independent runtime: onnxruntime (test requirement)
            import onnxruntime as ort

            session = ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        else:
            import io
            import zipfile

            from safetensors.torch import load

            z = zipfile.ZipFile(io.BytesIO(data))
            meta = json.loads(z.read("config.json"))
            clone = net.extract(app.SubnetConfig.from_dict(meta["config"]))
            clone.load_state_dict(load(z.read("model.safetensors")))
            got = clone(x)
    assert (ref - got).abs().max().item() <= 1e-4


def test_cli_predict_search_classify(capsys, tmp_path):
    assert main(["predict", "--config", "largest", "--hardware", "note10", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["latency"]["value"] > 0 and out["latency"]["kind"] == "published"
    assert main(["search", "--hardware", "note10", "--max-latency", "25", "--generations", "30", "--format", "csv"]) == 0
    assert "config" in capsys.readouterr().out
    img = ROOT / "assets" / "samples" / "golf_ball_1.jpg"
    assert main(["classify", str(img), "--config", "smallest", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(app.SubnetConfig.uniform(5, 4, 3, 192).to_dict()))
    assert main(["predict", "--config", str(cfg), "--hardware", "gpu-v100-b1"]) == 0


@pytest.fixture(scope="module")
def real_imagenette(tmp_path_factory) -> Path:
    """An Imagenette-shaped folder of real images (the bundled measurement set): 3 train and 6 val per class."""
    from tests.conftest import imagenette_like

    return imagenette_like(tmp_path_factory.mktemp("imagenette"), train=3, val=6)


def test_cli_evaluate_measures_top1_with_bn_from_the_train_split(real_imagenette, tmp_path, capsys):
    """The bundled supernet's largest and smallest subnets classify real Imagenette images far above chance
    (10%) with BN re-estimated on the train split: labels follow the supernet's class order."""
    argv = ["evaluate", "--data", str(real_imagenette), "--resolutions", "128", "--bn-images", "1000",
            "--cache", str(tmp_path / "cache"), "--no-progress", "--format", "json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["config"] for row in rows] == [app.SubnetConfig.largest(128).to_compact(), app.SubnetConfig.smallest(128).to_compact()]
    assert all(row["val_images"] == 60 and row["bn_images"] == 30 and row["bn_seed"] == 0 for row in rows)
    assert all(row["top1"] >= 60 for row in rows), rows
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # decoded once, reused on the next run


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--data", "/nonexistent"], "Imagenette split not found"),
    (["evaluate", "--data", str(ROOT), "--resolutions", "100"], "not among the supernet's 128..224 px"),
    (["evaluate", "--data", str(ROOT), "--resolutions", "1x"], "not a comma-separated list"),
    (["evaluate", "--data", str(ROOT), "--bn-images", "0"], "at least 1"),
    (["predict", "--config", "bogus"], "not a preset"),
    (["predict", "--config", "largest", "--hardware", "toaster"], "unknown target"),
    (["predict", "--config", '{"ks": [7]}'], "missing key"),
    (["search", "--max-latency", "1"], "infeasible"),
    (["search"], "at least one budget"),
    (["classify", "/nonexistent.jpg"], "No such image file"),
    (["classify", str(ROOT / "README.md"), "--supernet", "/nonexistent.pth"], "no such file"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0 and message in err and "Traceback" not in err


def test_cli_exit_codes_in_a_subprocess():
    p = subprocess.run([sys.executable, "-m", "app", "predict", "--config", "r999"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error:") and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and "classify" in p.stdout and "calibrate" not in p.stderr


def test_cli_export_pareto_and_bench(tmp_path, capsys):
    """The CLI's export (written file loads and matches the live subnet), pareto (one feasible row per budget, accuracy
    rising with the budget) and bench (a row per subnet with positive timings)."""
    import onnxruntime as ort

    from app.data import image_tensor, load_image

    out = tmp_path / "exports"
    assert main(["export", "--config", "smallest", "--format", "onnx", "--out", str(out)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.is_file() and path.suffix == ".onnx"
    net = app.load_supernet()
    sub = net.extract(app.SubnetConfig.smallest(128), calibrate=True)
    x = image_tensor(load_image(ROOT / "assets" / "samples" / "church_1.jpg"), 128, net.card.mean, net.card.std)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, sub(x).numpy(), atol=1e-3)

    assert main(["pareto", "--hardware", "note10", "--limits", "15,25,40", "--generations", "20", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and all(r["latency_ms"] <= limit for r, limit in zip(rows, (15, 25, 40)))
    assert rows[0]["accuracy"] <= rows[-1]["accuracy"]

    assert main(["bench", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["subnet"] for r in rows] == ["largest r224", "smallest r128"]
    assert all(r["extract_ms"] > 0 and r["inference_ms_b1"] > 0 for r in rows)
