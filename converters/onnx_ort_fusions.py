"""Shape an int8 QDQ graph so ONNX Runtime's CPU fusions cover all of Xception.

ORT turns each `DequantizeLinear -> op -> QuantizeLinear` into one integer kernel (QLinearConv, QLinearAdd,
...). ORT's profiler on the clothing Xception's int8 graph found two places it cannot, both left to float
(the per-op profile is in docs/performance.md):

- `relu(a + b)` where the sum also feeds the next residual add: the sum has its own range, the ReLU's output
  [0, max]. The ReLU becomes a float `DequantizeLinear -> QuantizeLinear` pair, 11 of them in Xception.
  As in edgex.converters.tflite_xnnpack, a second Add of the same inputs now writes the ReLU's quantization
  itself: its zero point is the type's minimum, so saturation is the ReLU, and ORT fuses it into QLinearAdd.
- the global average pool (ReduceMean over H and W) has no QDQ fusion: ORT transposes the last feature map
  back to NCHW and averages in float. An AveragePool over the whole map fuses into QLinearAveragePool,
  which runs in ORT's NHWC layout.

Both are standard ONNX ops, so other runtimes read the graph too; the parity gate checks the result.
"""

from __future__ import annotations

import numpy as np

_QMIN = {np.dtype(np.uint8): 0, np.dtype(np.int8): -128}


def shape_for_ort(model) -> tuple[int, int]:
    """Rewrite both patterns in place; returns (ReLU'd sums, spatial means) rewritten."""
    counts = relu_sums_as_adds(model), spatial_means_as_pools(model)
    _drop_unread_constants(model.graph)  # e.g. ReduceMean's axes: ORT warns about each one it finds
    return counts


def relu_sums_as_adds(model) -> int:
    """Each `Add -> Q -> DQ -> Relu -> Q(zero point at the minimum)` gets its own Add feeding that last Q."""
    graph = model.graph
    constants = _constants(graph)
    outputs = {o.name for o in graph.output}
    rewritten = 0
    for relu in [n for n in graph.node if n.op_type == "Relu"]:
        readers = readers_of(graph)
        dequantize = _producer(graph, relu.input[0])
        quantize = _producer(graph, dequantize.input[0]) if _is(dequantize, "DequantizeLinear") else None
        add = _producer(graph, quantize.input[0]) if _is(quantize, "QuantizeLinear") else None
        relu_q = readers.get(relu.output[0], [])
        if not (_is(add, "Add") and len(readers[add.output[0]]) == 1 and len(relu_q) == 1
                and _is(relu_q[0], "QuantizeLinear") and relu.output[0] not in outputs
                and _zero_point_is_minimum(relu_q[0], constants)):
            continue
        twin = _node("Add", list(add.input), [f"{add.output[0]}/relu"], f"{add.name}/relu")
        relu_q[0].input[0] = twin.output[0]
        _replace(graph, relu, [twin])
        if not readers_of(graph).get(dequantize.output[0]):
            _replace(graph, dequantize, [])
        rewritten += 1
    return rewritten


def spatial_means_as_pools(model) -> int:
    """Each `DQ -> ReduceMean(H, W) -> Q` over a 4-D map of static size becomes an AveragePool over the map."""
    import onnx

    graph = model.graph
    constants = _constants(graph)
    shapes = {vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
              for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
    rewritten = 0
    for mean in [n for n in graph.node if n.op_type == "ReduceMean"]:
        readers = readers_of(graph).get(mean.output[0], [])
        shape = shapes.get(mean.input[0], [])
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in mean.attribute}
        axes = list(attrs["axes"]) if "axes" in attrs else (
            [int(a) for a in constants[mean.input[1]]] if len(mean.input) > 1 and mean.input[1] in constants else [])
        if not (_is(_producer(graph, mean.input[0]), "DequantizeLinear") and len(readers) == 1
                and _is(readers[0], "QuantizeLinear") and len(shape) == 4 and None not in shape[2:]
                and sorted(a % 4 for a in axes) == [2, 3]):
            continue
        scale, zero_point = readers[0].input[1], readers[0].input[2]
        name = mean.output[0]
        pooled = [_node("AveragePool", [mean.input[0]], [f"{name}/pool"], f"{mean.name}/pool",
                        kernel_shape=shape[2:])]
        if attrs.get("keepdims", 1):
            pooled[0].output[0] = name
        else:  # the pooled map's own Q/DQ pair around Flatten: ORT runs Flatten on the integers
            pooled += [_node("QuantizeLinear", [f"{name}/pool", scale, zero_point], [f"{name}/pool_q"],
                             f"{mean.name}/pool_q"),
                       _node("DequantizeLinear", [f"{name}/pool_q", scale, zero_point], [f"{name}/pool_dq"],
                             f"{mean.name}/pool_dq"),
                       _node("Flatten", [f"{name}/pool_dq"], [name], f"{mean.name}/flatten", axis=1)]
        _replace(graph, mean, pooled)
        rewritten += 1
    return rewritten


def _node(op: str, inputs: list[str], outputs: list[str], name: str, **attrs):
    from onnx import helper

    return helper.make_node(op, inputs, outputs, name=name, **attrs)


def _is(node, op: str) -> bool:
    return node is not None and node.op_type == op


def _producer(graph, tensor: str):
    return next((n for n in graph.node if tensor in n.output), None)


def readers_of(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it."""
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _constants(graph) -> dict[str, np.ndarray]:
    """Initializers and Constant nodes' values, by name."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _drop_unread_constants(graph) -> None:
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unread = [init for init in graph.initializer if init.name not in read]
    for init in unread:
        graph.initializer.remove(init)
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in read]:
        graph.node.remove(node)


def _zero_point_is_minimum(quantize, constants: dict[str, np.ndarray]) -> bool:
    """A QuantizeLinear whose saturation at the type's minimum is exactly a ReLU."""
    if len(quantize.input) < 3 or quantize.input[2] not in constants:
        return False
    zero_point = constants[quantize.input[2]]
    return zero_point.size == 1 and _QMIN.get(zero_point.dtype) == int(zero_point.reshape(()))


def _replace(graph, node, replacements: list) -> None:
    """`node` (found by its first output: node objects do not survive the rebuild) swapped for `replacements`
    at its place in the topologically sorted node list."""
    nodes = list(graph.node)
    at = next(i for i, n in enumerate(nodes) if n.output[0] == node.output[0])
    nodes[at : at + 1] = replacements
    del graph.node[:]
    graph.node.extend(nodes)
