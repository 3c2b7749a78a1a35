"""Predictors against the reference implementation and published figures."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import app.predictors as P
from app.costs import cost_batch
from app.predictors.encoding import encode, ofa_features
from app.presets import specialised
from app.space import SubnetConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference"
# the published reference files (beside the project, not bundled in full): these oracle tests need them
needs_reference = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/reference (published reference data) not present")


@pytest.fixture(scope="module")
def ofa_tutorial():
    """The reference ofa.tutorial with its downloads pointed at ../shared and yaml.load made safe."""
    import ofa.tutorial.latency_table as LT

    orig = yaml.load
    LT.yaml.load = lambda fp, *a, **k: orig(fp, Loader=yaml.SafeLoader)

    class Local(LT.LatencyEstimator):
        def __init__(self, url):
            super().__init__(url=str(SHARED / "ofa" / "note10" / Path(url).name))

    LT.LatencyEstimator = Local
    return LT


@needs_reference
def test_note10_lut_equals_reference(ofa_tutorial):
    ref = ofa_tutorial.LatencyTable(device="note10")
    rng = random.Random(0)
    cfgs = [SubnetConfig.random(rng, r=rng.choice([160, 176, 192, 208, 224])) for _ in range(100)]
    ours = P.predict_batch(cfgs, "note10")["latency_ms"]
    theirs = np.array([ref.predict_efficiency(c.to_dict()) for c in cfgs])
    assert np.abs(ours - theirs).max() < 1e-9


def test_note10_vs_published_specialised_latency():
    """The LUT sum against the published Note10 latency of the w1.2 specialised nets it covers."""
    nets = [p for p in specialised() if p.device == "note10" and p.width_mult == 1.2 and p.image_size == p.config.r]
    assert len(nets) >= 3
    pred = P.predict_batch([p.config for p in nets], "note10")["latency_ms"]
    pub = np.array([p.published_latency_ms for p in nets])
    rel = np.abs(pred - pub) / pub
    assert rel.max() < 0.10, dict(zip([p.name for p in nets], pred))


def test_interpolation_and_out_of_range():
    cfg = SubnetConfig.largest(168)
    lo, hi = (P.predict_batch([cfg.replace(r=r)], "note10")["latency_ms"][0] for r in (160, 176))
    mid = P.predict(cfg, "note10").latency
    assert mid.value == pytest.approx((lo + hi) / 2)
    assert "interpolated" in mid.note
    out = P.predict(cfg.replace(r=128), "note10").latency
    assert out.value is None and "160-224" in out.note


@needs_reference
def test_ofa_accuracy_predictor_equals_reference():
    from ofa.tutorial.accuracy_predictor import AccuracyPredictor

    ref = AccuracyPredictor(pretrained=False, device="cpu")
    ref.model.load_state_dict(torch.load(SHARED / "ofa" / "acc_predictor.pth", map_location="cpu", weights_only=True))
    cfgs = [SubnetConfig.random(i) for i in range(100)] + [SubnetConfig.largest(), SubnetConfig.smallest()]
    feats = ofa_features(encode(cfgs))
    ref_feats = torch.stack([AccuracyPredictor.spec2feats(list(c.ks), list(c.e), list(c.d), c.r) for c in cfgs]).numpy()
    assert np.array_equal(feats, ref_feats)
    ours = P.predict_batch(cfgs, "note10")["accuracy_imagenet_holdout"]
    theirs = ref.predict_accuracy([c.to_dict() for c in cfgs]).numpy().ravel() * 100
    assert np.abs(ours - theirs).max() < 1e-3


def test_tutorial_figure_note10_25ms_search():
    """OFA tutorial: a Note10 <= 25 ms search finds about 81.7% predicted."""
    from app.search import SearchSettings, search

    res = search("note10", {"latency": 25}, "imagenet", SearchSettings(generations=500, seed=0))
    assert res.metrics["latency_ms"] <= 25
    assert 81.3 <= res.accuracy <= 82.5


def test_calibration_error_is_stated_and_small():
    from app.predictors.accuracy import imagenet_val_calibration

    cal = imagenet_val_calibration()
    assert cal.n >= 5 and cal.loo_mae < 1.0
    p = P.predict(SubnetConfig.largest(), "note10")
    assert f"±{cal.loo_mae:.1f}" in p.accuracy_imagenet_val.note
    assert p.accuracy_imagenet_val.value < p.accuracy_imagenet_holdout.value  # holdout runs above val


@needs_reference
def test_help_gpu_models_heldout_mape_recomputed():
    """For every one of the 12 shipped HELP GPU models: refit from HELP's measurements, the shipped coefficients are
    the fit's, and the held-out error on the untouched 20% split is the shipped figure; and the app's own
    prediction (``app.predict``) of a held-out config uses exactly those coefficients."""
    from app.predictors.gpu import HELP_FILE, features

    doc = json.loads(HELP_FILE.read_text())
    archs = torch.load(SHARED / "help" / "ofa_archs.pt", weights_only=False)["arch"]  # trusted reference data
    cfgs = [SubnetConfig(tuple(a["ks"]), tuple(a["e"]), tuple(a["d"]), int(a["r"])) for a in archs]
    X = features(encode(cfgs))
    te = np.random.default_rng(doc["split"]["seed"]).permutation(len(cfgs))[doc["split"]["train"]:]
    assert len(doc["models"]) == 12
    for key, shipped in doc["models"].items():
        y = np.asarray(torch.load(SHARED / "help" / "latency" / f"{key}.pt", weights_only=True), dtype=np.float64)

        def fit(rows):  # least squares on relative error, small ridge (the method the file states)
            A = X[rows] / y[rows, None]
            return np.linalg.solve(A.T @ A + doc["ridge"] * np.eye(A.shape[1]), A.T @ np.ones(len(rows)))

        # shipped: the fit on all 5,000 configs; its error is judged by the same fit on the 80% without the test split
        np.testing.assert_allclose(shipped["coef"], fit(np.arange(len(y))), rtol=1e-6, atol=1e-9, err_msg=key)
        coef = fit(np.setdiff1d(np.arange(len(y)), te))
        mape = np.mean(np.abs(X[te] @ coef - y[te]) / y[te]) * 100
        assert mape == pytest.approx(shipped["heldout_mape"], rel=1e-6), key
        assert mape < 10, key
        gpu, batch = key.rsplit("_", 1)
        held = cfgs[int(te[0])]
        app_ms = P.predict(held, f"gpu-{gpu}-b{batch}").latency.value
        assert app_ms == pytest.approx(float((X[te[:1]] @ np.asarray(shipped["coef"]))[0]), rel=1e-9), key


def test_gpu_latency_covers_helps_whole_resolution_range():
    """HELP measured r = 128..224, so every GPU target has a latency there. At batch 64 latency
    grows with the image area; at batch 1 it is launch-bound and flat in r (as HELP's data is)."""
    gpus = [t.name for t in P.hardware_targets() if t.name.startswith("gpu-")]
    assert len(gpus) == 12
    for name in gpus:
        small, large = (P.predict(SubnetConfig.largest(r), name).latency for r in (128, 224))
        assert small.value is not None and large.value is not None and small.value > 0, name
        assert "held-out MAPE" in small.note
        if name.endswith("-b64"):
            assert large.value > 2 * small.value, name
        if name.endswith("-b1"):
            assert abs(large.value / small.value - 1) < 0.15, name


def test_batch_predictions_equal_one_by_one():
    """The vectorised path the charts and the search use gives exactly the single-config predictions (its speed is
    measured in benchmarks/app_speed.py, not here)."""
    cfgs = [SubnetConfig.random(i, r=192) for i in range(50)]
    from app.predictors.hardware import bundled_card

    card = bundled_card()
    batch = P.predict_batch(encode(cfgs), "note10", card.sha256, card.width_mult, card.num_classes)
    for i, cfg in enumerate(cfgs):
        one = P.predict(cfg, "note10")  # the bundled supernet's card by default
        assert batch["latency_ms"][i] == pytest.approx(one.latency.value, rel=1e-9)
        assert batch["energy_mj"][i] == pytest.approx(one.energy.value, rel=1e-9)
        assert batch["macs"][i] == pytest.approx(one.macs.value * 1e6, rel=1e-9)
        assert batch["accuracy_supernet"][i] == pytest.approx(one.accuracy_supernet.value, rel=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown target"):
        P.predict(SubnetConfig.largest(), "toaster")
    from app.predictors.latency_lut import LatencyTable

    with pytest.raises(ValueError, match="lacks layer"):
        LatencyTable("broken", {224: {"Conv-input:224x224x3-output:112x112x24": 1.0}})
    doc = json.loads((Path(P.hardware.PRETRAINED) / "latency" / "note10.json").read_text())
    t = doc["tables"]["224"]
    t[next(iter(t))] = "fast"
    with pytest.raises(ValueError, match="non-numeric"):
        LatencyTable("broken", {224: t})


def test_targets_have_kinds_and_sources():
    ts = P.hardware_targets()
    assert {t.kind for t in ts} <= {"published", "measured", "model"}
    assert "note10" in {t.name for t in ts} and any(t.name.startswith("gpu-") for t in ts)
    assert all(t.source for t in ts)


def test_bundled_supernet_predictor_recomputed_from_its_csv():
    """The bundled accuracy predictor, refitted from the bundled CSV, equals its file (hyper-parameters,
    weights, held-out RMSE and tau); the file loads into a model that predicts its held-out configs as
    the refit does; over 4 seeded held-out splits it beats predicting the mean by a wide margin, and the app uses it for the bundled weights."""
    import app
    from app.predictors import accuracy as acc

    card = app.load_supernet().card
    doc = acc.supernet_predictor(card.sha256)
    assert doc is not None, "no accuracy predictor fitted for the bundled weights"
    data = acc.load_supernet_dataset(card, acc.SUPERNET_PREDICTOR.parent / doc["dataset"])
    current = int((data.prior < 0).sum())
    assert len(data.y) >= 500 and current >= acc.MIN_CURRENT_CONFIGS and doc["split"]["n"] == current
    assert doc.get("earlier_weights", []) == list(data.priors)
    fits = acc.fit_over_splits(data.X, data.y, prior=data.prior)
    fit = fits[doc["split"]["seed"]]
    for key in ("ridge", "kernel_gamma", "kernel_ridge"):
        assert fit[key] == doc[key]
    # the file was fitted with 2 BLAS threads; another thread count sums in another order (differences ~1e-9)
    np.testing.assert_allclose(fit["model_fit"].coef, doc["coef"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fit["model_fit"].alpha, doc["kernel_alpha"], rtol=1e-5, atol=1e-8)
    for key in ("rmse_pp", "kendall_tau", "configs"):
        assert fit["heldout"][key] == pytest.approx(doc["heldout"][key], rel=1e-6)
    held = np.setdiff1d(np.arange(len(data.y)), fit["train_rows"])
    np.testing.assert_allclose(doc["model_fit"](data.X[held]), fit["model_fit"](data.X[held]), atol=1e-6)
    mean = acc.summarise_splits(fits)
    assert doc["heldout_over_splits"] == pytest.approx(mean, rel=1e-6)
    assert mean["splits"] == acc.SKILL_SPLITS and mean["rmse_pp"] < 0.7 * mean["rmse_pp_predicting_the_mean"]
    assert mean["kendall_tau"] > 0.5
    p = P.predict(SubnetConfig.largest(224), "note10", card).accuracy_supernet
    assert p.value is not None and 70 < p.value < 95 and f"RMSE {mean['rmse_pp']:.2f} pp" in p.note


@pytest.mark.parametrize("content", ["{not json", '{"supernet_sha256": "abc"}',
                                     '{"supernet_sha256": "abc", "coef": [1, 2], "kernel_alpha": [1.0], "kernel_gamma": 0.1, '
                                     '"kernel_configs": ["largest"], "width_mult": 1.2, "num_classes": 10}',
                                     "bundled file without heldout_over_splits"])
def test_unreadable_supernet_predictor_is_reported_and_treated_as_absent(tmp_path, monkeypatch, content):
    """A broken predictor file (not JSON, fields missing, weights that do not fit the features) warns and
    counts as no predictor: the app then says so and shows OFA's prediction, instead of failing."""
    from app.predictors import accuracy as acc

    if content.startswith("bundled"):
        doc = json.loads(acc.SUPERNET_PREDICTOR.read_text("utf-8"))
        del doc["heldout_over_splits"]
        content = json.dumps({**doc, "supernet_sha256": "abc"})
    path = tmp_path / "imagenette_acc_predictor.json"
    path.write_text(content)
    monkeypatch.setattr(acc, "SUPERNET_PREDICTOR", path)
    acc.supernet_predictor.cache_clear()
    try:
        with pytest.warns(UserWarning, match="unreadable accuracy predictor"):
            assert acc.supernet_predictor("abc") is None
    finally:
        acc.supernet_predictor.cache_clear()


def test_supernet_predictor_fit_recovers_a_known_linear_rule():
    """On synthetic data from a known linear rule plus small noise, the fit's held-out error is the noise."""
    from app.predictors import accuracy as acc

    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, (400, 20)).astype(float)
    truth = rng.normal(0, 1, 20)
    y = X @ truth + 3.0 + rng.normal(0, 0.05, 400)
    fit = acc.fit_supernet_predictor(X, y)
    assert fit["heldout"]["rmse_pp"] < 0.1 and fit["heldout"]["kendall_tau"] > 0.9 and fit["ridge"] <= 0.1


def test_supernet_predictor_kernel_part_learns_an_interaction_ridge_cannot():
    """With a product term no linear model can express, the kernel part takes the held-out error well
    below the linear part's; on a purely linear rule it is not chosen to hurt (covered above)."""
    from app.predictors import accuracy as acc

    rng = np.random.default_rng(1)
    X = rng.integers(0, 2, (400, 8)).astype(float)
    y = X[:, :4].sum(1) + 2.0 * X[:, 4] * X[:, 5] - 2.0 * X[:, 6] * X[:, 7] + rng.normal(0, 0.05, 400)
    fit = acc.fit_supernet_predictor(X, y)
    h = fit["heldout"]
    assert fit["kernel_ridge"] is not None
    assert h["rmse_pp"] < 0.5 * h["rmse_pp_linear_part_only"]


def test_supernet_predictor_learns_shape_from_earlier_weights_and_level_from_current():
    """Rows measured on earlier weights (a constant 1.5 pp higher here) teach the shape; with only 60
    configs on the current weights, fewer than the features, the pooled fit predicts them far better than those 60 alone, and
    only current-weights configs are ever held out."""
    from app.predictors import accuracy as acc

    rng = np.random.default_rng(2)
    X = rng.integers(0, 2, (460, 60)).astype(float)  # more features than current-weights configs
    truth = rng.normal(0, 1, 60)
    prior = np.r_[np.zeros(400, dtype=int), np.full(60, -1)]
    y = X @ truth + 80.0 + 1.5 * (prior == 0) + rng.normal(0, 0.1, 460)
    pooled = acc.fit_supernet_predictor(np.c_[X, prior == 0], y, prior=prior)
    alone = acc.fit_supernet_predictor(X[400:], y[400:])
    held = np.setdiff1d(np.arange(460), pooled["train_rows"])
    assert pooled["split"]["n"] == 60 and len(held) == 12 and (held >= 400).all()
    assert pooled["heldout"]["rmse_pp"] < 0.2 < alone["heldout"]["rmse_pp"]
    current = np.c_[X[400:], np.zeros(60)]  # the current weights' features: shift column 0
    assert abs(np.mean(pooled["model_fit"](current) - y[400:])) < 0.1


def test_supernet_dataset_takes_rows_of_the_current_weights_and_their_lineage(tmp_path):
    """The dataset of a continued supernet: its own rows first, then its lineage's (with their shift
    columns set), never rows of unrelated weights; predicting uses the current weights' columns."""
    import csv

    from app.predictors import accuracy as acc
    from app.predictors.encoding import encode
    from app.card import SupernetCard

    cfgs = [SubnetConfig.uniform(7, 6, 4, r=224), SubnetConfig.uniform(3, 3, 2, r=128), SubnetConfig.uniform(5, 4, 3, r=160)]
    rows = [("new", 0, 83.0), ("old", 0, 82.0), ("old", 1, 80.0), ("other", 2, 50.0), ("new", 2, 81.0), ("old", 2, 79.5)]
    path = tmp_path / "d_bn250.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["config", "top1_half_a", "supernet_sha256"])
        w.writeheader()
        for sha, i, top1 in rows:
            w.writerow({"config": cfgs[i].to_compact(), "top1_half_a": top1, "supernet_sha256": sha})
    card = SupernetCard(width_mult=1.2, classes=[str(i) for i in range(10)], sha256="new",
                        extra={"lineage": [{"sha256": "older-unmeasured"}, {"sha256": "old"}]})
    data = acc.load_supernet_dataset(card, path)
    assert data.priors == ("old",)
    assert data.configs == [cfgs[0].to_compact(), cfgs[2].to_compact(), cfgs[0].to_compact(), cfgs[1].to_compact(), cfgs[2].to_compact()]
    assert data.y.tolist() == [83.0, 81.0, 82.0, 80.0, 79.5] and data.prior.tolist() == [-1, -1, 0, 0, 0]
    base = acc.SHIFT_TERMS
    shift = data.X[:, -base:]
    assert (shift[:2] == 0).all() and (shift[2:, 0] == 1).all()
    a = encode([cfgs[0]])
    macs = cost_batch(a, "macs", 1.2, 10)
    np.testing.assert_allclose(acc.supernet_features(a, macs, n_priors=1), data.X[:1])


def test_predict_uses_the_bundled_supernets_predictor_by_default():
    """``app.predict(cfg, hardware=...)`` — the README's own example — gives the bundled supernet's accuracy without a
    card, the same as with the loaded supernet's card."""
    import app

    cfg = SubnetConfig.largest(224)
    default = app.predict(cfg, hardware="note10").accuracy_supernet
    explicit = app.predict(cfg, hardware="note10", supernet_card=app.load_supernet().card).accuracy_supernet
    assert default.value is not None and default.value == explicit.value and default.note == explicit.note
