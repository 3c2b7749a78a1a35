"""The int8 graph rewrites: the fp32 ones keep the subnet's function exactly, the hard-swish one stays within one
quantization step of the exact int8 hard-swish, and onnxruntime then runs the graph on its int8 kernels."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import app
from app import int8_rewrites, quantize
from app.space import SubnetConfig


@pytest.fixture(scope="module")
def smallest():
    """The smallest subnet at r=128: expand ratio 3 everywhere, so most of its depthwise channel counts (72, 120, 144,
    240, 408...) are not multiples of 16."""
    net = app.load_supernet()
    sub = net.extract(SubnetConfig.smallest(128), calibrate=True)
    return net, sub, quantize.onnx_fp32(sub)


def _run(model_bytes: bytes, x: np.ndarray, optimized: str | None = None) -> np.ndarray:
    opts = ort.SessionOptions()
    if optimized:
        opts.optimized_model_filepath = optimized
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def _depthwise_channels(model) -> list[int]:
    return [next(a.i for a in n.attribute if a.name == "group") for n in model.graph.node
            if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]


def test_padding_and_gate_folding_keep_the_fp32_function(smallest):
    _, sub, fp32 = smallest
    model = onnx.load_from_string(fp32)
    before = _depthwise_channels(model)
    padded = int8_rewrites.pad_depthwise_channels(model)
    folded = int8_rewrites.fold_gate_into_conv(model)
    after = _depthwise_channels(model)
    assert padded == sum(c % 16 != 0 for c in before) > 0
    assert all(c % 16 == 0 for c in after) and all(a - b < 16 for a, b in zip(after, before))
    se_blocks = sum(1 for n in onnx.load_from_string(fp32).graph.node if n.op_type == "HardSigmoid")
    assert folded == se_blocks > 0 and not any(n.op_type == "HardSigmoid" for n in model.graph.node)
    onnx.checker.check_model(model)
    x = torch.randn(4, 3, 128, 128, generator=torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(_run(model.SerializeToString(), x), _run(fp32, x), atol=2e-5, rtol=0)


def _hard_swish_graph(scale_in: float, zp_in: int, scale_out: float, zp_out: int):
    """uint8 codes -> DequantizeLinear -> HardSwish -> QuantizeLinear, as the quantizer leaves every hard-swish."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(v, dt), n) for n, v, dt in (
        ("s_in", scale_in, np.float32), ("z_in", zp_in, np.uint8), ("s_out", scale_out, np.float32), ("z_out", zp_out, np.uint8))]
    nodes = [helper.make_node("DequantizeLinear", ["q", "s_in", "z_in"], ["x"], name="dq"),
             helper.make_node("HardSwish", ["x"], ["y"], name="act"),
             helper.make_node("QuantizeLinear", ["y", "s_out", "z_out"], ["out"], name="q_out")]
    graph = helper.make_graph(nodes, "hard_swish", [helper.make_tensor_value_info("q", TensorProto.UINT8, [1, 256, 1, 1])],
                              [helper.make_tensor_value_info("out", TensorProto.UINT8, [1, 256, 1, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("scale_in, zp_in, scale_out, zp_out", [(0.05, 128, 0.04, 12), (0.11, 60, 0.09, 5), (0.02, 200, 0.01, 60)])
def test_hard_swish_rewrite_is_within_one_step_of_the_exact_int8_hard_swish(scale_in, zp_in, scale_out, zp_out):
    """Every one of the 256 input codes: the rewritten graph's output code against numpy's exact
    quantize(hardswish(dequantize(q))) — at most one code apart (the gate is rounded to 1/255), equal on most."""
    model = _hard_swish_graph(scale_in, zp_in, scale_out, zp_out)
    assert int8_rewrites.hard_swish_as_int8(model) == 1
    assert not any(n.op_type == "HardSwish" for n in model.graph.node)
    q = np.arange(256, dtype=np.uint8).reshape(1, 256, 1, 1)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"q": q})[0]
    x = (q.astype(np.float64) - zp_in) * scale_in
    exact = np.clip(np.round(x * np.clip(x + 3, 0, 6) / 6 / scale_out) + zp_out, 0, 255)
    diff = np.abs(got.astype(int) - exact.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.9, (diff.max(), (diff == 0).mean())


def test_onnxruntime_runs_the_quantized_subnet_on_int8_kernels(smallest, tmp_path):
    """In the graph onnxruntime actually runs (its optimized model), every depthwise convolution, hard-swish and gate
    multiply is an int8 kernel: fp32 is left only at the stem (kept fp32 by the recipe) and the classifier."""
    net, sub, fp32 = smallest
    int8 = quantize.onnx_int8(sub, net.card)
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(2)).numpy()
    _run(int8, x, optimized=str(tmp_path / "optimized.onnx"))
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    hard_swish = sum(1 for n in onnx.load_from_string(fp32).graph.node if n.op_type == "HardSwish")
    se_blocks = sum(1 for n in onnx.load_from_string(fp32).graph.node if n.op_type == "HardSigmoid")
    assert ops["QLinearConv"] == sum(1 for n in onnx.load_from_string(fp32).graph.node if n.op_type == "Conv") - 1
    # the stem's and the head's hard-swish stay fp32 (the stem is fp32; the head's feeds the fp32 classifier)
    assert ops["QLinearMul"] == (hard_swish - 2) + se_blocks, ops
    assert ops["HardSigmoid"] <= 1 and ops["HardSwish"] == 0, ops


def test_the_browsers_int8_file_skips_only_the_padding(smallest):
    """The file for onnxruntime-web (whose WASM kernels gain nothing from padded channels) keeps the subnet's own
    depthwise channel counts, with the gates and hard-swishes rewritten all the same; the native file pads them."""
    net, sub, fp32 = smallest
    browser = onnx.load_from_string(quantize.onnx_int8(sub, net.card, for_browser=True))
    native = onnx.load_from_string(quantize.onnx_int8(sub, net.card))
    own = _depthwise_channels(onnx.load_from_string(fp32))
    assert _depthwise_channels(browser) == own and _depthwise_channels(native) != own
    for model in (browser, native):
        assert not any(n.op_type in ("HardSwish", "HardSigmoid") for n in model.graph.node if not n.name.startswith(("/stem", "/feature_mix")))
