"""Pad an int8 QDQ graph's channels to the multiples that ONNX Runtime's fast symmetric conv kernels need.

MLAS runs a depthwise QLinearConv through its indirect symmetric kernels (AVX2, AVX-512, VNNI) only when the
channel count is a multiple of 16 (MlasConvSymPackWSize); any other count takes the generic AVX2 kernel at
about half the speed. Xception's 728-channel middle flow is such a count (the measurements are in
docs/performance.md).

Every tensor that shares its channels with a misaligned depthwise conv (through Q/DQ, ReLU, Add, MaxPool and
other depthwise convs) forms a region; the regular convs that write into it get zero filters, those that read
from it zero input weights, and each depthwise conv in it zero channels. The padded channels hold zeros from
end to end, so the outputs are unchanged. A region that reaches any other op (a graph output, a pooling over
channels, a Gemm) is left alone.

The same kernels take a regular conv only when its input channels are a multiple of 4, which an RGB stem is
not: it falls back to im2col and a GEMM. `align_input_channels` widens the float image before it is
quantized, so the stem reads a zero fourth channel through zero weights.
"""

from __future__ import annotations

import numpy as np
from edgex.converters.onnx_ort_fusions import readers_of

CHANNEL_ALIGNMENT = 16  # MLAS's depthwise group alignment on x86 (GroupAlign in convsym.cpp)
INPUT_CHANNEL_ALIGNMENT = 4  # MLAS's input-channel alignment of a regular symmetric conv (KernelInputChannelAlignment)
_CHANNEL_WISE = ("Relu", "Add", "MaxPool", "QuantizeLinear", "DequantizeLinear")


def align_depthwise_channels(model) -> int:
    """Pad every region around a misaligned depthwise conv; returns how many depthwise convs now run aligned."""
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    aligned, seen = 0, set()
    for node in list(graph.node):
        if node.output[0] in seen or _depthwise_channels(node, graph, constants) in (None, 0):
            continue
        region = _region(graph, constants, node)
        if region is None:
            seen.add(node.output[0])
            continue
        tensors, writers, readers, depthwise = region
        seen.update(n.output[0] for n in depthwise)
        channels = _depthwise_channels(node, graph, constants)
        extra = -channels % CHANNEL_ALIGNMENT
        for conv in writers:
            _pad_conv(graph, constants, conv, out_channels=extra)
        for conv in readers:
            _pad_conv(graph, constants, conv, in_channels=extra)
        for conv in depthwise:
            _pad_conv(graph, constants, conv, out_channels=extra)
            for attr in conv.attribute:
                if attr.name == "group":
                    attr.i += extra
        stale = tensors | {name for conv in (*writers, *readers, *depthwise) for name in conv.input[1:]}
        for info in [vi for vi in graph.value_info if vi.name in stale]:
            graph.value_info.remove(info)  # their channel counts changed: runtimes infer them again
        aligned += len(depthwise)
    return aligned


def align_input_channels(model) -> int:
    """Widen each float image input that only symmetric int8 convs read (through a per-tensor Q/DQ pair, and a
    Transpose to NCHW for a channels-last input) when their input channels are not a multiple of 4; returns how
    many inputs were widened.

    A channels-last input gets a MatMul by [I | 0] (exact for finite inputs: x * 1 plus zeros), a
    channels-first one a Pad of its channel axis (contiguous planes there). The new channels quantize to the
    zero point and the convs read them through zero weights, so the outputs are unchanged.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    widened = 0
    for graph_input in [i for i in graph.input if i.name not in constants]:
        found = _stem_convs(graph, constants, graph_input)
        if found is None or graph_input.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        entry, convs, channels = found
        extra = -channels % INPUT_CHANNEL_ALIGNMENT
        if not extra:
            continue
        name = f"{graph_input.name}_aligned"
        if entry.op_type == "Transpose":
            graph.initializer.append(numpy_helper.from_array(np.eye(channels, channels + extra, dtype=np.float32),
                                                             f"{name}_widen"))
            widen = helper.make_node("MatMul", [graph_input.name, f"{name}_widen"], [name], name=f"{name}_matmul")
        else:
            graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64),
                                                             f"{name}_pads"))
            widen = helper.make_node("Pad", [graph_input.name, f"{name}_pads"], [name], name=f"{name}_pad")
        graph.node.insert(list(graph.node).index(entry), widen)
        entry.input[0] = name
        for conv in convs:
            _pad_conv(graph, constants, conv, in_channels=extra)
        stale = _downstream(graph, name, stop={c.output[0] for c in convs}) | {c.input[1] for c in convs}
        for info in [vi for vi in graph.value_info if vi.name in stale]:
            graph.value_info.remove(info)
        widened += 1
    return widened


def _stem_convs(graph, constants, graph_input):
    """(the node reading the input, the convs, their input channels) when a 4-D `graph_input` reaches only
    symmetric int8 convs through [Transpose(0, 3, 1, 2) ->] QuantizeLinear -> DequantizeLinear, each per-tensor;
    else None."""
    readers = readers_of(graph)
    first = readers.get(graph_input.name, [])
    if len(first) != 1 or len(graph_input.type.tensor_type.shape.dim) != 4:
        return None
    entry = first[0]
    quantizers = [entry]
    if entry.op_type == "Transpose":
        if next((list(a.ints) for a in entry.attribute if a.name == "perm"), None) != [0, 3, 1, 2]:
            return None
        quantizers = readers.get(entry.output[0], [])
    convs = []
    for quantize in quantizers:
        if quantize.op_type != "QuantizeLinear" or _kind(quantize, graph, constants) != "channel-wise":
            return None
        for dequantize in readers.get(quantize.output[0], []):
            if dequantize.op_type != "DequantizeLinear" or _kind(dequantize, graph, constants) != "channel-wise":
                return None
            for conv in readers.get(dequantize.output[0], []):
                regular = conv.op_type == "Conv" and conv.input[0] == dequantize.output[0] and _group(conv) == 1
                if not regular or _weight_shape(graph, constants, conv) is None \
                        or not _symmetric_int8(graph, constants, conv):
                    return None
                convs.append(conv)
    channels = {_weight_shape(graph, constants, conv)[1] for conv in convs}
    outputs = {o.name for o in graph.output}
    touched = {entry.output[0], *(q.output[0] for q in quantizers),
               *(n.output[0] for q in quantizers for n in readers.get(q.output[0], []))}
    if len(channels) != 1 or touched & outputs or not all(_weight_read_once(graph, constants, c, readers)
                                                          for c in convs):
        return None  # a graph output would change shape; a shared weight would be padded twice
    return entry, convs, channels.pop()


def _weight_read_once(graph, constants, conv, readers: dict[str, list]) -> bool:
    """Whether a conv's weight (and its DequantizeLinear) feed that conv alone."""
    weight, dequantize = _weight_source(graph, constants, conv.input[1])
    names = [conv.input[1]] + ([weight.name] if dequantize is not None else [])
    return weight is not None and all(len(readers.get(name, [])) == 1 for name in names)


def _downstream(graph, start: str, stop: set[str]) -> set[str]:
    """The tensors from `start` up to (and including) those in `stop`."""
    readers = readers_of(graph)
    seen, queue = set(), [start]
    while queue:
        tensor = queue.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        if tensor not in stop:
            queue += [out for node in readers.get(tensor, []) for out in node.output]
    return seen


def _depthwise_channels(node, graph, constants) -> int | None:
    """A depthwise conv's channel count when it is not a multiple of the alignment; 0 when it is, or when its
    weights are not what the fast kernel takes; None if not a depthwise conv."""
    if node.op_type != "Conv":
        return None
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    shape = _weight_shape(graph, constants, node)
    if group <= 1 or shape is None or shape[0] != group or shape[1] != 1:
        return None
    return 0 if group % CHANNEL_ALIGNMENT == 0 or not _symmetric_int8(graph, constants, node) else group


def _symmetric_int8(graph, constants, conv) -> bool:
    """int8 weights with every zero point 0: the only ones MLAS's symmetric kernels take (uint8 or asymmetric
    weights run the generic kernel whatever the channel count, so padding would only add work)."""
    from onnx import TensorProto, numpy_helper

    weight, dequantize = _weight_source(graph, constants, conv.input[1])
    if dequantize is None or weight.data_type != TensorProto.INT8:
        return False
    zero_point = constants.get(dequantize.input[2]) if len(dequantize.input) > 2 else None
    return zero_point is None or not numpy_helper.to_array(zero_point).any()


def _region(graph, constants, start):
    """(tensors, convs writing into them, convs reading them, depthwise convs among them) sharing `start`'s
    channels, or None when the region touches an op that cannot take padded channels."""
    producer = {o: n for n in graph.node for o in n.output}
    readers = readers_of(graph)
    outputs = {o.name for o in graph.output}
    tensors: set[str] = set()
    writers, reading, depthwise = {}, {}, {start.output[0]: start}
    queue = [start.input[0], start.output[0]]
    while queue:
        tensor = queue.pop()
        if tensor in tensors:
            continue
        if tensor in outputs or tensor in constants:
            return None
        tensors.add(tensor)
        node = producer.get(tensor)
        kind = _kind(node, graph, constants)
        if kind is None:
            return None
        if kind == "conv":
            writers[tensor] = node
        else:
            queue += _activations(node, constants)
            if kind == "depthwise":
                depthwise[node.output[0]] = node
        for reader in readers.get(tensor, []):
            kind = _kind(reader, graph, constants)
            if kind == "conv" and reader.input[0] == tensor:
                reading[reader.output[0]] = reader
            elif kind in ("channel-wise", "depthwise"):
                queue += [*reader.output, *_activations(reader, constants)]
                if kind == "depthwise":
                    depthwise[reader.output[0]] = reader
            else:
                return None
    return tensors, list(writers.values()), list(reading.values()), list(depthwise.values())


def _kind(node, graph, constants) -> str | None:
    """How a node relates to the channels of the tensors it touches."""
    if node is None:
        return None  # a graph input
    if node.op_type == "Conv":
        if _depthwise_channels(node, graph, constants) is not None:
            return "depthwise"
        return "conv" if _weight_shape(graph, constants, node) is not None and _group(node) == 1 else None
    if node.op_type in ("QuantizeLinear", "DequantizeLinear"):  # per-tensor only: a per-channel scale has C entries
        return "channel-wise" if all(list(constants[n].dims) in ([], [1]) for n in node.input[1:] if n in constants) \
            and all(n in constants for n in node.input[1:]) else None
    return "channel-wise" if node.op_type in _CHANNEL_WISE else None


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _activations(node, constants) -> list[str]:
    """The inputs of a node that carry the region's channels (the first of a conv or a Q/DQ, every input of
    an element-wise op)."""
    if node.op_type in ("Conv", "QuantizeLinear", "DequantizeLinear", "MaxPool"):
        return [node.input[0]]
    return [name for name in node.input if name not in constants]


def _weight_source(graph, constants, tensor: str):
    """(initializer, DequantizeLinear or None) behind a conv's weight or bias input."""
    if tensor in constants:
        return constants[tensor], None
    dequantize = next((n for n in graph.node if tensor in n.output), None)
    if dequantize is not None and dequantize.op_type == "DequantizeLinear" and dequantize.input[0] in constants:
        return constants[dequantize.input[0]], dequantize
    return None, None


def _weight_shape(graph, constants, conv) -> list[int] | None:
    weight, _ = _weight_source(graph, constants, conv.input[1])
    return list(weight.dims) if weight is not None else None


def _pad_conv(graph, constants, conv, out_channels: int = 0, in_channels: int = 0) -> None:
    """Zero filters (and zero bias, and copies of the last channel's scale) for `out_channels` more outputs;
    zero weights for `in_channels` more inputs."""
    weight, dequantize = _weight_source(graph, constants, conv.input[1])
    _pad_initializer(weight, axis=1, count=in_channels)
    _pad_initializer(weight, axis=0, count=out_channels)
    if dequantize is not None and out_channels:
        for name in dequantize.input[1:]:
            if list(constants[name].dims) not in ([], [1]):  # per-channel scale and zero point
                _pad_initializer(constants[name], axis=0, count=out_channels, edge=name == dequantize.input[1])
    if len(conv.input) > 2 and conv.input[2] and out_channels:
        bias, bias_dq = _weight_source(graph, constants, conv.input[2])
        _pad_initializer(bias, axis=0, count=out_channels)
        if bias_dq is not None:
            for name in bias_dq.input[1:]:
                if list(constants[name].dims) not in ([], [1]):
                    _pad_initializer(constants[name], axis=0, count=out_channels, edge=name == bias_dq.input[1])


def _pad_initializer(init, axis: int, count: int, edge: bool = False) -> None:
    """Append `count` zero (or, with `edge`, last-value) slices along `axis` to an initializer, in place."""
    from onnx import numpy_helper

    if not count:
        return
    values = numpy_helper.to_array(init)
    widths = [(0, 0)] * values.ndim
    widths[axis] = (0, count)
    padded = np.pad(values, widths, mode="edge" if edge else "constant")
    init.CopyFrom(numpy_helper.from_array(padded, init.name))
