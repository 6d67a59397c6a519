"""TFLite: int8 tensors against the float model's, and the output error with one activation quantized.

Both models come from the same converter run, so tensor names match. The float model is run
with a QUANTIZE -> DEQUANTIZE pair spliced after one tensor (scale and zero point taken from the
int8 model) to measure what quantizing that single activation costs at the output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.diagnose.metrics import ErrorStats, RangeUse, grid_bounds, integer_range, output_error

_SKIP_OPS = ("QUANTIZE", "DEQUANTIZE")


def _interpreter(path_or_bytes, preserve: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {"model_content": path_or_bytes} if isinstance(path_or_bytes, bytes) else {
        "model_path": str(path_or_bytes)}
    if preserve:  # a delegate would fuse ops and keep their intermediate tensors to itself
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(**kwargs, num_threads=2, experimental_preserve_all_tensors=preserve)
    interpreter.allocate_tensors()
    return interpreter


def _set_input(interpreter, sample: np.ndarray) -> None:
    detail = interpreter.get_input_details()[0]
    value = sample
    if detail["dtype"] != np.float32:
        scale, zero_point = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        value = np.clip(np.round(sample / scale + zero_point), info.min, info.max).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], value)


def _output(interpreter) -> np.ndarray:
    detail = interpreter.get_output_details()[0]
    value = interpreter.get_tensor(detail["index"])
    if detail["dtype"] != np.float32:
        scale, zero_point = detail["quantization"]
        value = (value.astype(np.float32) - zero_point) * scale
    return value.astype(np.float32)


def quantized_tensors(int8_path: Path, fp32_path: Path) -> list[dict]:
    """Each quantized activation of the int8 model that the float model also has, in graph order."""
    quant = _interpreter(int8_path, preserve=True)
    ref = _interpreter(fp32_path, preserve=True)
    float_index = {d["name"]: d["index"] for d in ref.get_tensor_details() if d["dtype"] == np.float32}
    details = {d["index"]: d for d in quant.get_tensor_details()}
    producers = {}
    for op in quant._get_ops_details():  # the interpreter's documented debug view
        for out in op["outputs"]:
            producers[out] = op["op_name"]
    consumers: dict[int, list[int]] = {}
    for op in ref._get_ops_details():
        for i in op["inputs"]:
            consumers.setdefault(int(i), []).append(op["index"])
    ref_ops = {op["index"]: op for op in ref._get_ops_details()}
    ref_details = {d["index"]: d for d in ref.get_tensor_details()}
    rows = []
    order = [d["index"] for d in quant.get_input_details()] + sorted(producers)
    for index in order:
        detail = details[index]
        op = producers.get(index, "INPUT")
        scale, zero_point = detail["quantization"]
        if op in _SKIP_OPS or not scale or detail["dtype"] not in (np.int8, np.int16, np.uint8):
            continue
        if detail["name"] not in float_index:
            continue
        fidx = float_index[detail["name"]]
        keep = [detail["name"]] + [ref_details[ref_ops[c]["outputs"][0]]["name"] for c in consumers.get(fidx, [])
                                   if len(ref_ops[c]["outputs"])]
        rows.append({"layer": detail["name"], "op": op, "quant_index": index, "float_index": fidx,
                     "scale": float(scale), "zero_point": int(zero_point), "dtype": np.dtype(detail["dtype"]).name,
                     "keep_float": list(dict.fromkeys(keep))})
    return rows


def cumulative(int8_path: Path, fp32_path: Path, rows: list[dict], samples: list[np.ndarray],
               progress: Callable[[], None] | None = None, source_taps=None) -> dict:
    """Per-row ErrorStats/RangeUse of the int8 tensors (against the float TFLite model, and against the
    FP32 source where `source_taps` traces them), and the output's, over the samples."""
    quant = _interpreter(int8_path, preserve=True)
    ref = _interpreter(fp32_path, preserve=True)
    stats = {r["layer"]: ErrorStats() for r in rows}
    source = {r["layer"]: ErrorStats() for r in rows}
    use = {r["layer"]: RangeUse() for r in rows}
    output, agree, references = ErrorStats(), 0, []
    for sample in samples:
        _set_input(quant, sample)
        _set_input(ref, sample)
        quant.invoke()
        ref.invoke()
        values = {}
        for row in rows:
            codes = quant.get_tensor(row["quant_index"])
            values[row["layer"]] = (codes.astype(np.float32) - row["zero_point"]) * row["scale"]
            reference = ref.get_tensor(row["float_index"])
            stats[row["layer"]].add(reference, values[row["layer"]])
            qmin, qmax = integer_range(row["dtype"])
            use[row["layer"]].add_codes(codes, qmin, qmax)
            use[row["layer"]].add_reference(reference, *grid_bounds(row["scale"], row["zero_point"], qmin, qmax))
        taps = source_taps(sample, values) if source_taps else {}
        for row in rows:
            source[row["layer"]].add(taps.get(row["layer"]), values[row["layer"]])
        out_q, out_f = _output(quant), _output(ref)
        references.append(out_f)
        output.add(out_f, out_q)
        agree += int(np.argmax(out_q) == np.argmax(out_f))
        if progress:
            progress()
    return {"layers": stats, "source_layers": source if source_taps else {}, "range_use": use, "output": output,
            "agreement": agree / max(len(samples), 1), "reference_outputs": references}


def reference_kernel_outputs(model_path: Path, samples: list[np.ndarray]) -> np.ndarray:
    """Outputs with LiteRT's builtin kernels only (no XNNPACK): the reference XNNPACK is held against."""
    interpreter = _interpreter(model_path, preserve=True)
    return np.concatenate([_invoke(interpreter, sample) for sample in samples])


def isolated(fp32_path: Path, rows: list[dict], samples: list[np.ndarray],
             progress: Callable[[], None] | None = None) -> dict[str, tuple[ErrorStats, float]]:
    """Output error and top-1 agreement of the float model with only one row's activation quantized."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(fp32_path))
    graph = model.subgraphs[0]
    ref = _interpreter(fp32_path)
    references = []
    for sample in samples:
        _set_input(ref, sample)
        ref.invoke()
        references.append(_output(ref))
    codes = {op: _opcode(model, schema, getattr(schema.BuiltinOperator, op)) for op in ("QUANTIZE", "DEQUANTIZE")}
    out = {}
    for row in rows:
        flat = _with_fake_quant(model, graph, schema, row, codes)
        interpreter = _interpreter(flat)
        out[row["layer"]] = output_error(lambda x, it=interpreter: _invoke(it, x), samples, references)
        if progress:
            progress()
    return out


def _invoke(interpreter, sample):
    _set_input(interpreter, sample)
    interpreter.invoke()
    return _output(interpreter)


def _opcode(model, schema, builtin: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 2
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _with_fake_quant(model, graph, schema, row: dict, codes: dict) -> bytes:
    """The float model's bytes with QUANTIZE -> DEQUANTIZE after tensor row['float_index'] (then undone)."""
    from tensorflow.lite.tools import flatbuffer_utils

    index = row["float_index"]
    source = graph.tensors[index]
    qtype = {"int8": schema.TensorType.INT8, "int16": schema.TensorType.INT16, "uint8": schema.TensorType.UINT8}
    quant_t, deq_t = schema.TensorT(), schema.TensorT()
    for tensor, suffix, dtype in ((quant_t, b"/edgex_q", qtype[row["dtype"]]),
                                  (deq_t, b"/edgex_dq", schema.TensorType.FLOAT32)):
        tensor.shape = np.array(source.shape, np.int32)
        tensor.shapeSignature = source.shapeSignature
        tensor.type, tensor.buffer, tensor.name = dtype, 0, (source.name or b"t") + suffix
    quant_t.quantization = schema.QuantizationParametersT()
    quant_t.quantization.scale = [row["scale"]]
    quant_t.quantization.zeroPoint = [row["zero_point"]]
    qi = len(graph.tensors)
    graph.tensors.extend([quant_t, deq_t])
    ops = []
    for code, inputs, outputs in ((codes["QUANTIZE"], [index], [qi]), (codes["DEQUANTIZE"], [qi], [qi + 1])):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code, np.array(inputs, np.int32), np.array(outputs, np.int32)
        ops.append(op)
    saved_inputs = [np.array(op.inputs) for op in graph.operators]
    saved_outputs = np.array(graph.outputs)
    position = 0
    for i, op in enumerate(graph.operators):
        if index in list(op.outputs):
            position = i + 1
        op.inputs = np.where(np.asarray(op.inputs) == index, qi + 1, op.inputs).astype(np.int32)
    graph.outputs = np.where(np.asarray(graph.outputs) == index, qi + 1, graph.outputs).astype(np.int32)
    graph.operators[position:position] = ops
    try:
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    finally:
        del graph.operators[position:position + 2]
        for op, inputs in zip(graph.operators, saved_inputs, strict=True):
            op.inputs = inputs
        graph.outputs = saved_outputs
        del graph.tensors[qi:]
