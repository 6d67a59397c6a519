"""The ONNX int8 graph's rewrites for ONNX Runtime's kernels (edgex.converters.onnx_ort_fusions and
onnx_channel_padding) on a small QDQ graph with Xception's patterns: what they change, that ORT then runs
integer kernels only, and that the outputs stay the same."""

from __future__ import annotations

import numpy as np
import pytest

CHANNELS = 24  # not a multiple of 16, as Xception's 728 is not


def _float_graph(depthwise_output_is_graph_output: bool = False):
    """conv -> relu -> depthwise -> relu -> conv -> add(residual) -> relu -> depthwise -> conv -> add -> conv -> mean
    -> dense."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights, nodes = [], []

    def conv(name, x, cin, cout, depthwise=False):
        shape = (cout, 1, 3, 3) if depthwise else (cout, cin, 1, 1)
        fan_in = 9 if depthwise else cin
        weights.append(numpy_helper.from_array((rng.standard_normal(shape) * (2 / fan_in) ** 0.5).astype(np.float32),
                                               f"{name}.w"))
        weights.append(numpy_helper.from_array(rng.uniform(-0.1, 0.1, cout).astype(np.float32), f"{name}.b"))
        attrs = {"group": cout, "pads": [1, 1, 1, 1]} if depthwise else {}
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], name=name, **attrs))
        return name

    def op(kind, inputs, name, **attrs):
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    r1 = op("Relu", [conv("c1", "x", 8, CHANNELS)], "r1")
    d1 = conv("d1", r1, CHANNELS, CHANNELS, depthwise=True)
    added = op("Add", [conv("c2", op("Relu", [d1], "r2"), CHANNELS, CHANNELS), r1], "add1")
    d2 = conv("d2", op("Relu", [added], "r3"), CHANNELS, CHANNELS, depthwise=True)
    added2 = op("Add", [conv("c3", d2, CHANNELS, CHANNELS), added], "add2")
    weights.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    mean = op("ReduceMean", [conv("c4", added2, CHANNELS, 16), "axes"], "mean", keepdims=0)
    weights.append(numpy_helper.from_array(rng.standard_normal((16, 5)).astype(np.float32), "dense.w"))
    op("Gemm", [mean, "dense.w"], "y")
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])]
    if depthwise_output_is_graph_output:
        outputs.append(helper.make_tensor_value_info(d1, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "xception_patterns",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 12, 12])], outputs,
                              weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _quantized(tmp_path, weight_type=None, **graph_options):
    """ORT's QDQ quantizer on the graph, as edgex's ONNX recipe u8s8-w7 runs it (u8u8 with QUInt8 weights)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.items = iter([{"x": rng.standard_normal((1, 8, 12, 12)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.items, None)

    onnx.save(_float_graph(**graph_options), tmp_path / "float.onnx")
    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=weight_type or QuantType.QInt8)
    return onnx.load(str(tmp_path / "int8.onnx"))


def _run(model, x, level=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if level is not None:
        options.graph_optimization_level = level
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _inputs():
    return np.random.default_rng(2).standard_normal((4, 1, 8, 12, 12)).astype(np.float32)


def test_channel_padding_aligns_every_depthwise_conv_and_changes_no_output(tmp_path):
    import onnx
    from edgex.converters.onnx_channel_padding import align_depthwise_channels

    model = _quantized(tmp_path)
    padded = onnx.ModelProto()
    padded.CopyFrom(model)
    assert align_depthwise_channels(padded) == 2
    onnx.checker.check_model(padded, full_check=True)
    groups = [a.i for n in padded.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert groups == [32, 32]
    weights = {i.name: i for i in padded.graph.initializer}
    c4 = next(n for n in padded.graph.node if n.name == "c4")
    c4_weight = next(n for n in padded.graph.node if c4.input[1] in n.output).input[0]
    assert list(weights[c4_weight].dims) == [16, 32, 1, 1]  # the region's reader takes zero input weights
    for x in _inputs():
        np.testing.assert_array_equal(_run(padded, x), _run(model, x))  # zero channels, end to end


def test_channel_padding_leaves_a_region_that_reaches_a_graph_output(tmp_path):
    from edgex.converters.onnx_channel_padding import align_depthwise_channels

    model = _quantized(tmp_path, depthwise_output_is_graph_output=True)
    before = model.SerializeToString()
    # r1's channels reach both depthwise convs (through the residual add) and d1's output is the graph's:
    # padding would change an output's shape, so nothing in the region changes
    assert align_depthwise_channels(model) == 0
    assert model.SerializeToString() == before


def test_fusion_rewrites_leave_ort_no_float_op_and_keep_the_outputs(tmp_path):
    import onnx
    import onnxruntime as ort
    from edgex.converters.onnx_ort_fusions import shape_for_ort

    model = _quantized(tmp_path)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert shape_for_ort(rewritten) == (1, 1)  # add1 -> r3 (add1 also feeds add2); the mean
    onnx.checker.check_model(rewritten, full_check=True)
    assert "axes" not in {i.name for i in rewritten.graph.initializer}  # ORT would warn about each unread one

    def optimized_ops(graph) -> list[str]:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]

    before, after = optimized_ops(model), optimized_ops(rewritten)
    # without the rewrites ORT leaves the ReLU'd sum's requantization (DQ -> Q) and the mean in float
    assert before.count("DequantizeLinear") > 1 and "ReduceMean" in before, before
    assert {"Relu", "ReduceMean", "GlobalAveragePool", "AveragePool"}.isdisjoint(after), after
    assert after.count("QLinearAdd") == 3 and "QLinearAveragePool" in after
    assert after.count("DequantizeLinear") == 1 and after.count("QuantizeLinear") == 1  # the graph's input, output
    for x in _inputs():
        reference, out = _run(model, x), _run(rewritten, x)
        # one rounding fewer on the ReLU'd sum, carried through three layers: up to 2.0 steps measured (Zen 4);
        # 6 leaves room for another CPU's kernels; a lost ReLU moves them by 73-96 steps on these inputs
        step = np.abs(reference).max() / 127
        assert np.abs(out - reference).max() <= 6 * step


@pytest.mark.parametrize("zero_point", [0, 3])
def test_relu_sum_rewrite_needs_a_zero_point_at_the_minimum(tmp_path, zero_point):
    """Saturation is a ReLU only when the ReLU's zero point is the type's minimum."""
    from edgex.converters.onnx_ort_fusions import relu_sums_as_adds
    from onnx import numpy_helper

    model = _quantized(tmp_path)
    relu_q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "r3")
    init = next(i for i in model.graph.initializer if i.name == relu_q.input[2])
    init.CopyFrom(numpy_helper.from_array(np.array(zero_point, np.uint8), init.name))
    assert relu_sums_as_adds(model) == (1 if zero_point == 0 else 0)


def test_channel_padding_skips_weights_the_fast_kernel_does_not_take(tmp_path):
    """uint8 weights (the u8u8 recipe) run MLAS's generic depthwise kernel at any channel count: no padding."""
    from edgex.converters.onnx_channel_padding import align_depthwise_channels
    from onnxruntime.quantization import QuantType

    model = _quantized(tmp_path, weight_type=QuantType.QUInt8)
    before = model.SerializeToString()
    assert align_depthwise_channels(model) == 0
    assert model.SerializeToString() == before


def _stem_graph(tmp_path, weight_type=None, channels_last=True):
    """An RGB image -> 3x3 stride-2 conv -> ReLU -> 1x1 conv, quantized as edgex's recipe u8s8-w7 does: a Keras
    source's stem (channels last, then a Transpose) or a PyTorch source's (channels first)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(3)
    weights = [numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3, "stem.w"),
               numpy_helper.from_array(rng.uniform(-0.1, 0.1, 16).astype(np.float32), "stem.b"),
               numpy_helper.from_array(rng.standard_normal((8, 16, 1, 1)).astype(np.float32) * 0.3, "pw.w")]
    first = "nchw" if channels_last else "image"
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2])] if channels_last else []
    nodes += [helper.make_node("Conv", [first, "stem.w", "stem.b"], ["stem"], strides=[2, 2], kernel_shape=[3, 3]),
              helper.make_node("Relu", ["stem"], ["relu"]),
              helper.make_node("Conv", ["relu", "pw.w"], ["y"])]
    shape = [1, 15, 15, 3] if channels_last else [1, 3, 15, 15]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)
    logits = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 7, 7])
    graph = helper.make_graph(nodes, "stem", [image], [logits], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "stem.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"image": x} for x in _stem_inputs(channels_last)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(tmp_path / "stem.onnx"), str(tmp_path / "stem8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=weight_type or QuantType.QInt8)
    return onnx.load(str(tmp_path / "stem8.onnx"))


def _stem_inputs(channels_last=True):
    x = np.random.default_rng(4).uniform(-1, 1, (4, 1, 15, 15, 3)).astype(np.float32)
    return x if channels_last else x.transpose(0, 1, 4, 2, 3).copy()


def _run_image(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


@pytest.mark.parametrize("channels_last", [True, False])
def test_input_channel_alignment_widens_an_rgb_stem_and_changes_no_output(tmp_path, channels_last):
    import onnx
    from edgex.converters.onnx_channel_padding import align_input_channels

    model = _stem_graph(tmp_path, channels_last=channels_last)
    widened = onnx.ModelProto()
    widened.CopyFrom(model)
    assert align_input_channels(widened) == 1
    onnx.checker.check_model(widened, full_check=True)
    widen = next(n for n in widened.graph.node if n.op_type == ("MatMul" if channels_last else "Pad"))
    assert widen.input[0] == "image" and widened.graph.input[0].name == "image"  # the input the user feeds stays
    weights = {i.name: list(i.dims) for i in widened.graph.initializer}
    assert [16, 4, 3, 3] in weights.values() and [8, 16, 1, 1] in weights.values()  # the stem widened, not pw
    for x in _stem_inputs(channels_last):
        np.testing.assert_array_equal(_run_image(widened, x), _run_image(model, x))


def test_input_channel_alignment_skips_weights_the_fast_kernel_does_not_take(tmp_path):
    from edgex.converters.onnx_channel_padding import align_input_channels
    from onnxruntime.quantization import QuantType

    model = _stem_graph(tmp_path, weight_type=QuantType.QUInt8)
    before = model.SerializeToString()
    assert align_input_channels(model) == 0
    assert model.SerializeToString() == before


def test_input_channel_alignment_leaves_an_input_that_another_op_reads(tmp_path):
    """The image also read by something else (here a graph output next to the stem's) keeps its shape."""
    from edgex.converters.onnx_channel_padding import align_input_channels
    from onnx import TensorProto, helper

    model = _stem_graph(tmp_path)
    model.graph.output.append(helper.make_tensor_value_info("nchw", TensorProto.FLOAT, None))
    before = model.SerializeToString()

    assert align_input_channels(model) == 0
    assert model.SerializeToString() == before


def test_input_channel_alignment_keeps_a_dynamic_batch(tmp_path):
    import onnx
    from edgex.converters.onnx_channel_padding import align_input_channels

    model = _stem_graph(tmp_path)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    widened = onnx.ModelProto()
    widened.CopyFrom(model)
    assert align_input_channels(widened) == 1
    x = np.concatenate(list(_stem_inputs()))  # 4 images in one batch
    np.testing.assert_array_equal(_run_image(widened, x), _run_image(model, x))
