"""ONNX Runtime as users run it: the default-optimized session (ORT_ENABLE_ALL: QLinearConv, QLinearAdd,
QGemm... fused from the QDQ pairs) against the unoptimized QDQ graph (ORT_DISABLE_ALL), node by node.

ORT picks its int8 kernels by the CPU it runs on: on x86 without VNNI the fused U8S8 kernels multiply
with VPMADDUBSW, which saturates int16 pairs, so an artifact can be right unfused and wrong fused.
The fused graph is the one ORT builds here (SessionOptions.optimized_model_filepath), run as saved
with its nodes' outputs exposed; that it still reproduces the default session's output exactly is
checked, so the taps changed nothing. A fused node keeps its QDQ node's name (plus `_token_<n>`),
which finds its counterpart; both are compared on the original quantizer's grid, channels-last
layouts transposed back.

Needs only numpy, onnx and onnxruntime, and runs standalone so it can run under an emulated CPU:
    qemu-x86_64 -cpu Haswell python -m edgex.diagnose.fused MODEL.onnx INPUTS.npy OUT.json
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.diagnose.metrics import ErrorStats, integer_range
from edgex.diagnose.onnx import session

_TOKEN = re.compile(r"(_token_\d+)+$")


def optimized_model(model_path: Path, folder: Path, threads: int | None = None):
    """(default ORT session, the graph it optimized for this CPU as a ModelProto)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # ORT's default
    options.optimized_model_filepath = str(folder / "optimized.onnx")
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    default = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    return default, onnx.load(str(folder / "optimized.onnx"))


def counterparts(original, fused) -> list[dict]:
    """Each fused node with an original (QDQ) node of the same name: the tensors to compare it with."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in original.graph.initializer}
    nodes = {n.name: n for n in original.graph.node}
    quantizer_of = {}
    for node in original.graph.node:
        if node.op_type == "QuantizeLinear":
            quantizer_of.setdefault(node.input[0], node)
    matched = {n.name for n in fused.graph.node if nodes.get(_TOKEN.sub("", n.name).removesuffix("/duplicated"))}
    upstream = _matched_inputs(fused, matched)
    rows = []
    for node in fused.graph.node:
        base = _TOKEN.sub("", node.name).removesuffix("/duplicated")
        match = nodes.get(base)
        if match is None or not node.output or not node.output[0]:
            continue
        q = match if match.op_type == "QuantizeLinear" else quantizer_of.get(match.output[0])
        grid = None
        if q is not None and q.input[1] in initializers and len(q.input) > 2 and q.input[2] in initializers:
            scale = numpy_helper.to_array(initializers[q.input[1]]).ravel()
            zero_point = numpy_helper.to_array(initializers[q.input[2]])
            if scale.size == 1:
                qmin, qmax = integer_range(zero_point.dtype.name)
                grid = {"tensor": q.output[0], "scale": float(scale[0]), "zero_point": int(zero_point.ravel()[0]),
                        "qmin": qmin, "qmax": qmax}
        rows.append({"node": node.name, "op": node.op_type, "original": match.name,
                     "names": ";".join([match.name, *match.output, *match.input[1:]]),
                     "original_op": match.op_type, "tensor": node.output[0],
                     "float_tensor": match.output[0] if match.op_type != "QuantizeLinear" else None, "grid": grid,
                     "channels_last": _channels_last(node),
                     "inputs": upstream[node.name]})
    return rows


def _matched_inputs(fused, matched: set[str]) -> dict[str, list[str]]:
    """node -> the nearest matched nodes upstream of each input (through unmatched ones: Transpose...)."""
    producer = {out: n for n in fused.graph.node for out in n.output}
    found: dict[str, list[str]] = {}

    def feeding(node) -> list[str]:
        if node.name not in found:
            found[node.name] = []  # cycles cannot happen in ONNX; this only stops a re-entry
            names: list[str] = []
            for tensor in node.input:
                up = producer.get(tensor)
                if up is not None:
                    names += [up.name] if up.name in matched else feeding(up)
            found[node.name] = list(dict.fromkeys(names))
        return found[node.name]

    return {n.name: feeding(n) for n in fused.graph.node}


def _channels_last(node) -> bool:
    return node.op_type.startswith("Nhwc") or any(a.name == "channels_last" and a.i == 1 for a in node.attribute)


def compare(model_path: Path, samples: list[np.ndarray], edit: Callable[[object], None] | None = None,
            threads: int | None = None) -> dict:
    """Fused vs unfused on every sample: per-node and model-output error sums (JSON-able), both outputs.

    `edit(fused_model)` changes the fused graph before it runs (tests force a node to diverge with it).
    """
    import onnx

    original = onnx.load(str(model_path))
    threads = threads or 2  # the same for every session, so the exact-equality check compares like with like
    with tempfile.TemporaryDirectory(prefix="edgex-fused-") as tmp:
        default, fused = optimized_model(Path(model_path), Path(tmp), threads)
    if edit is not None:
        edit(fused)
    rows = counterparts(original, fused)
    final = original.graph.output[0].name
    fused_names = [final] + [r["tensor"] for r in rows]
    unfused_names = list(dict.fromkeys([final] + [t for r in rows for t in _wanted(r)]))
    fused_session = session(fused, fused_names, threads=threads)
    unfused_session = session(original, unfused_names, threads=threads)
    input_name = unfused_session.get_inputs()[0].name
    stats = [ErrorStats() for _ in rows]
    output, outputs = ErrorStats(), {"default": [], "fused": [], "unfused": []}
    for sample in samples:
        feed = {input_name: sample}
        users = default.run([final], feed)[0]
        fv = fused_session.run(fused_names, feed)
        uv = dict(zip(unfused_names, unfused_session.run(unfused_names, feed), strict=True))
        if edit is None and not np.array_equal(users, fv[0]):
            from edgex.diagnose.invariants import DiagnosisBug

            raise DiagnosisBug("the fused graph ORT saved does not reproduce its default session's output "
                               f"(max difference {float(np.max(np.abs(users - fv[0]))):.3g})")
        for row, value, stat in zip(rows, fv[1:], stats, strict=True):
            fused_value, reference = _comparable(row, value, uv)
            stat.add(reference, fused_value)
        output.add(uv[final], fv[0])
        for key, value in (("default", users), ("fused", fv[0]), ("unfused", uv[final])):
            outputs[key].append(np.asarray(value, np.float32).reshape(len(value), -1).tolist())
    import onnxruntime as ort

    return {"onnxruntime": ort.__version__, "output": output.to_dict(), "outputs": outputs,
            "nodes": [{**{k: r[k] for k in ("node", "op", "original", "original_op", "names", "inputs")},
                       "stats": s.to_dict()} for r, s in zip(rows, stats, strict=True)]}


def _wanted(row: dict) -> list[str]:
    return [t for t in (row["float_tensor"], row["grid"]["tensor"] if row["grid"] else None) if t]


def _comparable(row: dict, value: np.ndarray, unfused: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(fused value, unfused reference or None) in the same units (the original grid's) and layout."""
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.integer):
        grid = row["grid"]
        if grid is None:
            return value.astype(np.float64), None
        reference = (unfused[grid["tensor"]].astype(np.float64) - grid["zero_point"]) * grid["scale"]
        value = (value.astype(np.float64) - grid["zero_point"]) * grid["scale"]
    elif row["float_tensor"]:
        reference = np.asarray(unfused[row["float_tensor"]], np.float64)
    else:
        return value.astype(np.float64), None
    return value, _same_layout(reference, value.shape, row["channels_last"])


def _same_layout(reference: np.ndarray, shape: tuple, channels_last: bool) -> np.ndarray | None:
    """The unfused (NCHW) reference in the fused tensor's layout; None when the shapes cannot match.
    Only a 4-D shape that reads the same both ways (H = W = C) needs the node's own layout to decide."""
    nhwc = reference.transpose(0, 2, 3, 1) if reference.ndim == 4 else None
    if reference.shape == shape and (nhwc is None or nhwc.shape != shape or not channels_last):
        return reference
    if nhwc is not None and nhwc.shape == shape:
        return nhwc
    if reference.size == int(np.prod(shape)) and [d for d in reference.shape if d != 1] == [d for d in shape if d != 1]:
        return reference.reshape(shape)
    return None


def main(argv: list[str] | None = None) -> int:
    """MODEL.onnx INPUTS.npy OUT.json: compare on each row of INPUTS (a batch of one each), write JSON."""
    model, inputs, out = (argv if argv is not None else sys.argv[1:])[:3]
    batch = np.load(inputs)
    result = compare(Path(model), [batch[i : i + 1] for i in range(len(batch))])
    import platform

    result["machine"] = platform.machine()
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
