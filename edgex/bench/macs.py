"""Multiply-accumulates of one inference of an artifact, counted from its own graph (batch 1).

Convolutions (full, grouped, depthwise) and dense layers: weight elements per output position times
output positions. That is what the floor is measured in; elementwise ops, pooling and the int8 graph's
quantize/dequantize steps add no MACs here. An ONNX graph whose channels edgex padded with zeros for a
runtime's kernels (edgex.converters.onnx_channel_padding) records the MACs that added under `PADDED_MACS_KEY`;
they do no useful work and are not counted, so every format of one model counts alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PADDED_MACS_KEY = "edgex.padded_macs"  # ONNX metadata_props: MACs of zero channels added to the graph


def model_gmac(model_file: Path, runtime: str) -> float | None:
    """GMAC of one batch-1 inference, or None when the graph cannot be read for it."""
    counters = {"onnxruntime": _onnx_macs, "openvino": _openvino_macs, "litert": _tflite_macs}
    try:
        macs = counters[runtime](Path(model_file))
    except Exception:  # a counting aid: a graph it cannot read gets no floor ratio, never a failed row
        return None
    return macs / 1e9 if macs else None


def _onnx_macs(path: Path) -> int:
    import onnx

    model = onnx.load(str(path))
    padded = next((int(p.value) for p in model.metadata_props if p.key == PADDED_MACS_KEY), 0)
    return onnx_macs(model) - padded


def onnx_macs(model) -> int:
    """MACs of an ONNX ModelProto's convolutions and dense layers, as its weight shapes say."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = {vi.name: [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
              for vi in [*graph.value_info, *graph.output, *graph.input]}
    weights = {init.name: tuple(init.dims) for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}

    def weight_shape(name: str) -> tuple[int, ...] | None:
        if name in weights:
            return weights[name]
        node = producers.get(name)  # QDQ: the weight reaches the conv through DequantizeLinear
        if node is not None and node.op_type == "DequantizeLinear" and node.input[0] in weights:
            return weights[node.input[0]]
        if node is not None and node.op_type == "Constant":
            return tuple(numpy_helper.to_array(node.attribute[0].t).shape)
        return None

    total = 0
    for node in graph.node:
        if node.op_type in ("Conv", "QLinearConv", "ConvInteger"):
            w = weight_shape(node.input[3] if node.op_type == "QLinearConv" else node.input[1])
            out = shapes.get(node.output[0])
            if w and out and len(out) >= 3:
                total += int(np.prod(w)) * int(np.prod(out[2:]))
        elif node.op_type in ("Gemm", "MatMul", "MatMulInteger"):
            w = weight_shape(node.input[1])
            if w:
                total += int(np.prod(w))
    return total


def _openvino_macs(path: Path) -> int:
    import openvino as ov

    def dims(shape) -> list[int]:  # a free batch dimension counts as 1
        return [d.get_length() if d.is_static else 1 for d in shape]

    total = 0
    for op in ov.Core().read_model(str(path)).get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "GroupConvolution"):
            out = dims(op.output(0).get_partial_shape())
            total += int(np.prod(dims(op.input(1).get_partial_shape()))) * int(np.prod(out[2:]))
        elif kind == "MatMul":
            total += int(np.prod(dims(op.input(1).get_partial_shape())))
    return total


def _tflite_macs(path: Path) -> int:
    from edgex.bench.runner import litert_interpreter

    interpreter_class, _ = litert_interpreter()
    interpreter = interpreter_class(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    total = 0
    for op in interpreter._get_ops_details():  # the op list LiteRT itself reads; no public equivalent
        kind, inputs, outputs = op["op_name"], op["inputs"], op["outputs"]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(inputs) > 1:
            weight, out = tensors[inputs[1]]["shape"], tensors[outputs[0]]["shape"]
            per_position = int(np.prod(weight)) if kind == "CONV_2D" else int(np.prod(weight[1:3])) * int(weight[3])
            total += per_position * int(np.prod(out[1:3]))
        elif kind == "FULLY_CONNECTED" and len(inputs) > 1:
            total += int(np.prod(tensors[inputs[1]]["shape"]))
    return total
