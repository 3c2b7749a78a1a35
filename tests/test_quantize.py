"""int8: the quantized subnet against its fp32 self on real images, its file, its verification, and the predictions
and energies that take the precision into account."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import app
from app import quantize
from app.space import SubnetConfig

ROOT = Path(__file__).resolve().parent.parent
IMAGENETTE = ROOT.parent / "shared" / "data" / "imagenette"


@pytest.fixture(scope="module")
def net():
    return app.load_supernet()


@pytest.fixture(scope="module")
def largest(net):
    """The largest subnet at r=224 as the app calibrates it, its fp32 ONNX file, its int8 session (the app's path) and
    the supernet's digest from before the quantization."""
    before = _state_digest(net)
    sub = net.extract(SubnetConfig.largest(224), calibrate=True)
    return sub, quantize.onnx_fp32(sub), quantize.int8_subnet(sub, net.card), before


def _state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_int8_agrees_with_fp32_on_200_val_images_and_leaves_the_supernet_alone(net, largest):
    """The largest subnet's int8 top-1 equals its fp32 top-1 on at least 97% of 200 Imagenette val images (a seeded
    sample); quantizing reads the extracted copy only (the shared supernet's weights and statistics are unchanged)."""
    if not IMAGENETTE.is_dir():
        pytest.skip("../shared/data/imagenette is not here (CI has it)")
    from app.data import eval_transform, load_image
    from app.datasets import list_split

    sub, _, int8, before = largest
    files, _ = list_split(IMAGENETTE, "val")
    picked = [files[i] for i in torch.randperm(len(files), generator=torch.Generator().manual_seed(0))[:200].tolist()]
    tf = eval_transform(224, net.card.mean, net.card.std)
    x = torch.stack([tf(load_image(p)) for p in picked])
    agreement = quantize.top1_agreement(sub, int8, x)
    assert agreement >= 97.0, agreement
    assert _state_digest(net) == before


def test_int8_file_is_at_least_3_5x_smaller_and_its_graph_is_int8(largest):
    import onnx

    _, fp32, int8, _ = largest
    data = int8.data
    assert len(fp32) / len(data) >= 3.5, (len(fp32), len(data))
    graph = onnx.load_from_string(data).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # every convolution's weights are int8 (per-channel scales beside them) but the stem's, kept fp32 like the classifier
    assert len(int8_weights) == len(convs) - 1 > 50
    kept = {n.name for n in graph.node if n.op_type in ("Conv", "Gemm") and not any("DequantizeLinear" in m.op_type
            for m in graph.node if set(m.output) & {n.input[1]})}
    assert kept == set(quantize.KEEP_FP32)
    assert any(n.op_type == "GlobalAveragePool" for n in graph.node)  # the squeeze-excite poolings were rewritten


def test_fp32_onnx_equals_the_subnet(largest):
    sub, fp32, _, _ = largest
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = sub(x)
    got = quantize.OnnxSubnet(fp32, sub.config, "fp32")(x)
    assert (ref - got).abs().max().item() < 1e-4


def test_cli_exports_int8_verified_on_real_images_and_it_reproduces_the_apps_int8(tmp_path, capsys, net):
    """``python -m app export --format onnx-int8`` writes a file that onnxruntime loads and that gives the app's own
    int8 outputs; the verification (top-1 agreement on the bundled real images) is reported."""
    import onnxruntime as ort

    from app.cli import main
    from app.data import image_tensor, load_image

    assert main(["export", "--config", "smallest", "--format", "onnx-int8", "--out", str(tmp_path / "exports")]) == 0
    captured = capsys.readouterr()
    path = Path(captured.out.strip())
    assert path.is_file() and path.name.endswith(".int8.onnx")
    share = float(captured.err.split("int8 top-1 = fp32 top-1 on ")[1].split("%")[0])
    assert 95.0 <= share <= 100.0
    sub = net.extract(SubnetConfig.smallest(128), calibrate=True)
    app_int8 = quantize.OnnxSubnet(quantize.onnx_int8(sub, net.card), sub.config, "int8")  # quantized again, not the cache
    x = torch.stack([image_tensor(load_image(p), 128, net.card.mean, net.card.std)[0]
                     for p in sorted((ROOT / "assets" / "samples").glob("*.jpg"))[:6]])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(got, app_int8(x).numpy(), atol=1e-5)
    meta = {p.key: p.value for p in __import__("onnx").load(str(path)).metadata_props}
    assert json.loads(meta["ofa_explorer"])["precision"] == "int8"


def test_failed_quantization_or_verification_writes_nothing(tmp_path, monkeypatch, net):
    from app import export

    sub = net.extract(SubnetConfig.smallest(128), calibrate=True)
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 100.1)  # no file can pass
    with pytest.raises(export.ExportError, match=r"agrees with the fp32 subnet on only .* nothing was written"):
        export.export_to(sub, net.card, "onnx-int8", tmp_path / "out")
    monkeypatch.undo()

    def broken(*_a, **_k):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : node_conv2d\nlong internal trace")

    monkeypatch.setattr(quantize, "quantize_int8", broken)
    monkeypatch.setattr(quantize, "_models", type(quantize._models)())  # an empty cache: quantize again
    with pytest.raises(export.ExportError) as info:
        export.export_to(sub, net.card, "onnx-int8", tmp_path / "out")
    assert "\n" not in str(info.value) and str(info.value).startswith("int8 quantization of this subnet failed")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_int8_prediction_is_fp32_plus_the_fitted_drop(net):
    """At int8 the bundled supernet's accuracy is the fp32 prediction plus the correction, whose coefficients equal an
    independent least-squares solve of the measured drops."""
    from app.costs import cost_batch
    from app.predictors.encoding import encode
    from app.predictors.int8 import RIDGE, _features, int8_correction, read_dataset

    corr = int8_correction(net.card.sha256)
    assert corr is not None and corr.configs >= 10
    rows = read_dataset(net.card.sha256)
    a = encode([SubnetConfig.from_compact(r["config"]) for r in rows])
    X = np.concatenate([np.ones((len(rows), 1)), _features(a, cost_batch(a, "macs", 1.2, 10))], axis=1)
    drop = np.array([float(r["top1_int8"]) - float(r["top1_fp32"]) for r in rows])
    if corr.uses_features:  # ridge with an unshrunk intercept, by augmentation (an independent formulation)
        aug_X = np.vstack([X, np.sqrt(RIDGE) * np.eye(X.shape[1])[1:]])
        aug_y = np.concatenate([drop, np.zeros(X.shape[1] - 1)])
        expected = np.linalg.lstsq(aug_X, aug_y, rcond=None)[0]
    else:
        expected = np.concatenate([[drop.mean()], np.zeros(X.shape[1] - 1)])
    np.testing.assert_allclose(corr.coef, expected, atol=1e-8)
    for cfg in (SubnetConfig.largest(224), SubnetConfig.smallest(128), SubnetConfig.uniform(5, 4, 3, 176)):
        fp32 = app.predict(cfg, "note10", precision="fp32")
        int8 = app.predict(cfg, "note10", precision="int8")
        one = encode([cfg])
        assert int8.accuracy_supernet.value == pytest.approx(
            fp32.accuracy_supernet.value + float(corr.drop(one, cost_batch(one, "macs", 1.2, 10))[0]))
        assert "int8 correction" in int8.accuracy_supernet.source


def test_energy_per_precision_and_per_device():
    """Operation-count energy by hand from Horowitz's figures; the device figure is power x latency / batch; targets
    without int8 latencies say so instead of giving a number; the FPGA's figures are int8 at both precisions."""
    from app.costs import count_macs
    from app.predictors.energy import DEVICE_POWER

    cfg = SubnetConfig.largest(224)
    fp32, int8 = (app.predict(cfg, "gpu-v100-b32", precision=p) for p in ("fp32", "int8"))
    macs = count_macs(cfg, 1.2, 10)
    words_fp32 = (fp32.energy.value * 1e9 - macs * 4.6) / 640.0  # the words the model counted
    assert int8.energy.value == pytest.approx((macs * 0.3 + words_fp32 * 160.0) * 1e-9)
    assert fp32.energy_device.value == pytest.approx(DEVICE_POWER["gpu-v100"].watts * fp32.latency.value / 32)
    assert int8.latency.value is None and int8.energy_device.value is None and "no int8" in int8.latency.note
    note10 = app.predict(cfg, "note10")
    assert note10.energy_device.value == pytest.approx(2.0 * note10.latency.value) and "assumed" in note10.energy_device.source
    fpga = [app.predict(cfg, "ultra96", precision=p).latency for p in ("fp32", "int8")]
    assert fpga[0].value == fpga[1].value and all("int8" in m.note for m in fpga)
    # the same subnet costs different energy on different devices
    assert len({round(app.predict(cfg, hw).energy_device.value, 3) for hw in ("note10", "ultra96", "gpu-v100-b1")}) == 3
