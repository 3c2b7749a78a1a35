"""The viewer's device as a hardware target: weightless probes, the device latency model, the bounded registry and the
validation of what a browser sends (no browser here; the end-to-end test is in tests/test_browser_runtime.py)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from app.predictors import device, predict
from app.predictors.encoding import encode
from app.space import SubnetConfig
from app.ui.browser_report import MAX_RUNS, BrowserReportError, browser_family, parse_profile

RID = "0123456789abcdef0123456789abcdef"


def test_features_add_up_to_the_counted_macs():
    """The per-kind MACs of the model's features are the subnet's MACs counted by OFA's rules (an independent path:
    app.costs.count_macs walks the layers of one config)."""
    from app.costs import count_macs

    rng = random.Random(3)
    cfgs = [SubnetConfig.random(rng, r=rng.choice([128, 160, 200, 224])) for _ in range(20)]
    f = device.layer_features(encode(cfgs))
    assert f.shape == (20, len(device.FEATURES)) and (f[:, -1] == 1).all()
    np.testing.assert_allclose(f[:, :3].sum(axis=1) * 1e6, [count_macs(c) for c in cfgs], rtol=1e-9)


def test_the_fit_recovers_a_known_device_and_predicts_configs_it_never_saw():
    truth = np.array([0.02, 0.3, 0.5, 0.15, 1.5])
    probes = device.probe_configs(12)
    y = device.layer_features(encode(probes)) @ truth
    model = device.DeviceLatencyModel.fit(probes, y, label="test device")
    rng = random.Random(11)
    held = [SubnetConfig.random(rng, r=rng.choice([132, 176, 220])) for _ in range(30)]
    want = device.layer_features(encode(held)) @ truth
    np.testing.assert_allclose(model.batch(encode(held)), want, rtol=1e-6)
    assert model.fit_mape_percent < 1e-6 and all(c >= 0 for c in model.coef)


def test_the_fit_keeps_coefficients_non_negative_on_noisy_latencies():
    probes = device.probe_configs(12)
    rng = np.random.default_rng(0)
    y = device.layer_features(encode(probes)) @ np.array([0.05, 0.2, 0.0, 0.1, 2.0]) * rng.uniform(0.9, 1.1, 12)
    model = device.DeviceLatencyModel.fit(probes, y, label="noisy")
    assert all(c >= 0 for c in model.coef)
    assert model.fit_mape_percent < 10


@pytest.mark.parametrize("bad", [[1.0, 2.0], [1.0, float("nan"), 2.0], [1.0, -2.0, 3.0], [0.0, 0.0, 0.0]])
def test_the_fit_refuses_latencies_it_cannot_use(bad):
    with pytest.raises(device.DeviceFitError) as info:
        device.DeviceLatencyModel.fit(device.probe_configs(12)[: len(bad)], bad, label="x")
    assert "nothing was kept" in str(info.value)


def test_probe_configs_are_seeded_and_cover_the_resolutions():
    a, b = device.probe_configs(12), device.probe_configs(12)
    assert a == b and len(a) == 12
    assert a[0] == SubnetConfig.smallest() and a[1] == SubnetConfig.largest()
    assert min(c.r for c in a) == 128 and max(c.r for c in a) == 224 and len({c.r for c in a}) >= 8
    with pytest.raises(ValueError):
        device.probe_configs(1)


def test_a_weightless_probe_is_tiny_and_does_the_real_subnets_work(tmp_path):
    """The probe has the real subnet's operators and shapes once onnxruntime has folded its constants (checked on
    the optimised graph onnxruntime writes), and runs to finite outputs of the right shape."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import app
    from app.quantize import onnx_fp32

    net = app.load_supernet()
    cfg = SubnetConfig.random(random.Random(5), r=160)
    real = onnx_fp32(net.extract(cfg, calibrate=False))
    probe = device.probe_model(net, cfg)
    assert len(probe) < len(real) / 100

    def optimised(data: bytes, name: str):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # folding, no hardware layouts
        so.optimized_model_filepath = str(tmp_path / name)
        s = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        out = s.run(None, {"image": np.full((1, 3, 160, 160), 0.5, np.float32)})[0]
        g = onnx.load(str(tmp_path / name)).graph
        shapes = sorted((n.op_type, tuple(i.dims)) for n in g.node for i in g.initializer if i.name in n.input)
        return out, sorted(n.op_type for n in g.node), shapes

    out_real, ops_real, shapes_real = optimised(real, "real.onnx")
    out_probe, ops_probe, shapes_probe = optimised(probe, "probe.onnx")
    assert ops_probe == ops_real and "ConstantOfShape" not in ops_probe
    assert shapes_probe == shapes_real
    assert out_probe.shape == out_real.shape == (1, net.card.num_classes) and np.isfinite(out_probe).all()


def test_a_profiled_device_is_a_hardware_target_for_predictions_and_search():
    from app.search import SearchSettings, search

    probes = device.probe_configs(12)
    y = device.layer_features(encode(probes)) @ np.array([0.03, 0.4, 0.2, 0.2, 1.0])
    target = device.DEVICES.add(device.DeviceLatencyModel.fit(probes, y, label="Chrome on Android"))
    assert device.is_device(target.name) and target.label == "This device: Chrome on Android"
    p = predict(SubnetConfig.largest(), target.name)
    want = float((device.layer_features(encode([SubnetConfig.largest()])) @ [0.03, 0.4, 0.2, 0.2, 1.0])[0])
    assert p.latency.value == pytest.approx(want)
    assert "measured in your browser (WASM, 1 thread)" in p.latency.source
    budget = float(np.median(y))
    res = search(target.name, {"latency": budget}, "imagenet", SearchSettings(generations=20, seed=0))
    assert res.metrics["latency_ms"] <= budget


def test_the_device_registry_is_bounded_and_an_evicted_device_says_so():
    reg = device._Devices(capacity=3)
    probes = device.probe_configs(4)
    names = [reg.add(device.DeviceLatencyModel.fit(probes, [1.0 + i, 2.0, 3.0, 4.0], label=f"d{i}")).name for i in range(5)]
    assert len(reg) == 3 and reg.get(names[0]) is None and reg.get(names[-1]) is not None
    with pytest.raises(ValueError) as info:
        predict(SubnetConfig.largest(), "device-0000000000")
    assert "profile the device again" in str(info.value)


# ------------------------------------------------------------------------------------ what the browser sends
def _profile(**overrides) -> str:
    doc = {"request_id": RID, "kind": "profile", "backend": "wasm", "latencies_ms": [[3.0, 2.0, 4.0], [10.0, 11.0]]}
    doc.update(overrides)
    return json.dumps(doc)


def test_a_valid_profile_gives_the_median_per_probe():
    p = parse_profile(_profile(), request_id=RID, probes=2)
    assert p.medians_ms == (3.0, 10.5)


BAD = {
    "negative latency": (_profile(latencies_ms=[[1.0], [-1.0]]), "negative latency"),
    "NaN latency": (_profile().replace("[10.0, 11.0]", "[NaN]"), "not a finite number"),
    "huge latency": (_profile(latencies_ms=[[1.0], [1e12]]), "not a measurement"),
    "zero latencies": (_profile(latencies_ms=[[1.0], [0.0, 0.0]]), "zero latencies"),
    "too many runs": (_profile(latencies_ms=[[1.0], [1.0] * (MAX_RUNS + 1)]), "more than"),
    "too many probes": (_profile(latencies_ms=[[1.0]] * 3), "where the app sent 2"),
    "probe not a list": (_profile(latencies_ms=[[1.0], "fast"]), "no latencies"),
    "malformed JSON": ('{"request_id": "' + RID + '", "latencies_ms": [[1,', "not valid JSON"),
    "another run": (_profile(request_id="f" * 32), "another run"),
    "markup as the backend": (_profile(backend="<b>wasm</b>"), "unknown backend"),
    "too large": (" " * 3_000_000, "too large"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_profiles_are_refused_with_one_plain_line(case):
    text, words = BAD[case]
    with pytest.raises(BrowserReportError) as info:
        parse_profile(text, request_id=RID, probes=2)
    message = str(info.value)
    assert words in message and len(message.splitlines()) == 1 and "<" not in message


@pytest.mark.parametrize("ua, family", [
    ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
     "Chrome on Android"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
     "Mobile/15E148 Safari/604.1", "Safari on iOS"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Windows"),
    ("<script>alert(1)</script>", "a browser on an unknown system"),
    (None, "a browser on an unknown system"),
])
def test_only_a_browser_family_from_fixed_lists_is_kept(ua, family):
    assert browser_family(ua) == family
