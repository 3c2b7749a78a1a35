"""Graph rewrites that let onnxruntime run an int8 subnet on its fast kernels (standard ONNX ops only).

What onnxruntime 1.32's CPU provider does with the plain QDQ file (per-op profile of the largest subnet @224,
``docs/measured.md``, "int8"): a depthwise convolution whose channel count is not a multiple of 16 misses the
symmetric int8 kernel (the first block's 24 channels: 0.32 ms instead of 0.14); every hard-swish runs in fp32 between a
DequantizeLinear and a QuantizeLinear (1.4 ms of 8.7); every squeeze-excite gate likewise. Three rewrites:

* :func:`pad_depthwise_channels` (fp32 graph, exact): zero channels up to a multiple of 16 for every depthwise
  convolution and everything that shares its channels (the convolution producing them gets zero filters, the one
  consuming them zero weights), so the model computes the same function.
* :func:`fold_gate_into_conv` (fp32 graph, exact): the squeeze-excite gate ``HardSigmoid(conv(x))`` becomes
  ``Clip(conv'(x), 0, 1)`` with the slope and offset folded into ``conv'``; the quantizer then folds the clip into the
  convolution's output range, so the gate comes straight out of an int8 convolution.
* :func:`hard_swish_as_int8` (quantized graph): ``x · relu6(x + 3) / 6`` as an Add whose output is quantized at
  6/255 (the uint8 range does the clipping) and read back at 1/255 (the division by 6), times ``x`` — QDQ groups that
  onnxruntime fuses into its int8 add and multiply kernels. The gate is rounded to 1/255: the one approximation,
  measured with the rest (top-1 agreement in the tests, the card's accuracy table in ``docs/``).
"""

from __future__ import annotations

import numpy as np

CHANNEL_MULTIPLE = 16  # onnxruntime's symmetric int8 depthwise kernel takes channel counts that are multiples of 16 (x86)
_ELEMENTWISE = {"Relu", "HardSwish", "HardSigmoid", "Clip", "Add", "Mul", "GlobalAveragePool"}


def _conv_group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _index(graph):
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def pad_depthwise_channels(model, multiple: int = CHANNEL_MULTIPLE) -> int:
    """Pad, in place, the channels of every depthwise convolution of the fp32 ``model`` (an ``onnx.ModelProto`` with
    its weights as initializers) to a multiple of ``multiple``, with every tensor that shares those channels. Returns
    how many depthwise convolutions were padded; a channel group that reaches anything but convolutions and
    element-wise ops (a graph output, a Flatten) is left as it is."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer, consumers = _index(graph)  # padding changes weights and group counts, never which node feeds which
    graph_outputs = {o.name for o in graph.output}
    padded = 0
    for dw in list(graph.node):
        if dw.op_type != "Conv" or _conv_group(dw) == 1 or dw.input[1] not in inits:
            continue
        channels = _conv_group(dw)
        if tuple(inits[dw.input[1]].dims[:2]) != (channels, 1) or channels % multiple == 0:
            continue
        group = _channel_group(dw, producer, consumers, graph_outputs, set(inits))
        if group is None:
            continue
        target = -(-channels // multiple) * multiple
        _apply_padding(inits, group, channels, target)
        padded += 1
    if padded:  # shapes recorded by the exporter are stale now; shape inference runs again before quantization
        del graph.value_info[:]
    return padded


def _channel_group(dw, producer, consumers, graph_outputs: set[str], inits: set[str]):
    """The convolutions around ``dw``'s channels: ``(depthwise, produce, consume)`` node lists, or None if the channels
    reach something that cannot be padded (a graph output or input, an op other than a convolution or element-wise)."""
    depthwise, produce, consume = {id(dw): dw}, {}, {}
    seen: set[str] = set()
    todo = [dw.input[0], dw.output[0]]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in graph_outputs:
            return None
        p = producer.get(t)
        if p is None:
            return None  # a graph input
        for node, role in [(p, produce)] + [(c, consume) for c in consumers.get(t, [])]:
            if node.op_type == "Conv" and _conv_group(node) == 1:
                role[id(node)] = node  # produces the channels (zero filters) or consumes them (zero weights)
            elif node.op_type == "Conv":
                depthwise[id(node)] = node
                todo += [node.input[0], node.output[0]]
            elif node.op_type in _ELEMENTWISE:
                todo += [i for i in node.input if i and i not in inits] + [node.output[0]]
            else:
                return None
    return list(depthwise.values()), list(produce.values()), list(consume.values())


def _apply_padding(inits, group, channels: int, target: int) -> None:
    from onnx import numpy_helper

    def pad(name: str, axis: int) -> None:
        a = numpy_helper.to_array(inits[name])
        widths = [(0, 0)] * a.ndim
        widths[axis] = (0, target - channels)
        inits[name].CopyFrom(numpy_helper.from_array(np.pad(a, widths), name))

    depthwise, produce, consume = group
    for conv in depthwise + produce:  # filters (and biases) for the new channels: zero
        pad(conv.input[1], 0)
        if len(conv.input) > 2 and conv.input[2]:
            pad(conv.input[2], 0)
    for conv in depthwise:
        next(a for a in conv.attribute if a.name == "group").i = target
    for conv in consume:  # the new channels' weights in the next convolution: zero
        pad(conv.input[1], 1)


def fold_gate_into_conv(model) -> int:
    """Replace, in place, every ``HardSigmoid`` fed by a convolution (nothing else reading that convolution) by
    ``Clip(0, 1)`` with its slope and offset folded into the convolution's weights and bias. Returns how many."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer, consumers = _index(graph)
    lo, hi = "int8_rewrites/zero", "int8_rewrites/one"
    nodes, folded = [], 0
    for n in graph.node:
        conv = producer.get(n.input[0]) if n.op_type == "HardSigmoid" else None
        if (conv is None or conv.op_type != "Conv" or len(consumers[conv.output[0]]) != 1 or len(conv.input) < 3
                or conv.input[1] not in inits or conv.input[2] not in inits):
            nodes.append(n)
            continue
        alpha = next((a.f for a in n.attribute if a.name == "alpha"), 0.2)
        beta = next((a.f for a in n.attribute if a.name == "beta"), 0.5)
        w, b = (numpy_helper.to_array(inits[conv.input[i]]) for i in (1, 2))
        inits[conv.input[1]].CopyFrom(numpy_helper.from_array((w * np.float32(alpha)).astype(np.float32), conv.input[1]))
        inits[conv.input[2]].CopyFrom(numpy_helper.from_array((b * np.float32(alpha) + np.float32(beta)).astype(np.float32), conv.input[2]))
        nodes.append(helper.make_node("Clip", [n.input[0], lo, hi], list(n.output), name=f"{n.name}_as_clip"))
        folded += 1
    if folded:
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.extend([numpy_helper.from_array(np.array(0, np.float32), lo),
                                  numpy_helper.from_array(np.array(1, np.float32), hi)])
    return folded


def hard_swish_as_int8(model) -> int:
    """Rewrite, in place, every ``DequantizeLinear → HardSwish → QuantizeLinear`` of the quantized ``model`` (uint8
    activations) as int8 add and multiply QDQ groups (see the module's docstring). Returns how many."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producer, consumers = _index(graph)
    k = "int8_rewrites/"
    constants = {k + "three": np.array(255, np.uint8), k + "three_scale": np.array(3 / 255, np.float32),
                 k + "zero_point": np.array(0, np.uint8), k + "relu6_scale": np.array(6 / 255, np.float32),
                 k + "gate_scale": np.array(1 / 255, np.float32)}
    replaced, rewritten = set(), {}
    for n in graph.node:
        if n.op_type != "HardSwish":
            continue
        dq = producer.get(n.input[0])
        after = consumers.get(n.output[0], [])
        if (dq is None or dq.op_type != "DequantizeLinear" or len(consumers[dq.output[0]]) != 1 or len(after) != 1
                or after[0].op_type != "QuantizeLinear"):
            continue
        x, p = list(dq.input), f"{n.name}_int8"
        rewritten[id(n)] = [
            helper.make_node("DequantizeLinear", x, [p + "/x_for_add"], name=p + "/dequantize_x_for_add"),
            helper.make_node("DequantizeLinear", [k + "three", k + "three_scale", k + "zero_point"], [p + "/three"],
                             name=p + "/dequantize_three"),
            helper.make_node("Add", [p + "/x_for_add", p + "/three"], [p + "/x_plus_3"], name=p + "/add"),
            helper.make_node("QuantizeLinear", [p + "/x_plus_3", k + "relu6_scale", k + "zero_point"], [p + "/relu6"],
                             name=p + "/quantize_relu6"),
            helper.make_node("DequantizeLinear", [p + "/relu6", k + "gate_scale", k + "zero_point"], [p + "/gate"],
                             name=p + "/dequantize_gate"),
            helper.make_node("DequantizeLinear", x, [p + "/x_for_mul"], name=p + "/dequantize_x_for_mul"),
            helper.make_node("Mul", [p + "/x_for_mul", p + "/gate"], list(n.output), name=p + "/mul"),
        ]
        replaced.add(id(dq))
    if not rewritten:
        return 0
    nodes = []
    for n in graph.node:
        if id(n) in rewritten:
            nodes += rewritten[id(n)]
        elif id(n) not in replaced:
            nodes.append(n)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in constants.items())
    return len(rewritten)
