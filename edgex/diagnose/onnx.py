"""ONNX QDQ: each activation's QuantizeLinear -> DequantizeLinear pair, measured against the same graph
with every activation pair bypassed (the artifact unquantized: its weights, float activations).

Bypassing a pair keeps its output name, so the two graphs share every tensor name. A pair whose grid
starts at 0 (zero point = the type's minimum) stands in for a ReLU the quantizer removed (ORT folds
Relu into the clamp of the following QuantizeLinear), so its bypass is a Relu, not an identity:
without it the "float" reference would lose every folded ReLU and measure nothing real.
Keeping exactly one pair measures what that quantizer alone costs at the output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.diagnose.metrics import ErrorStats, RangeUse, grid_bounds, integer_range, output_error

SourceTaps = Callable[[np.ndarray, dict[str, np.ndarray]], dict[str, np.ndarray]]
TapsFactory = Callable[[list[str]], SourceTaps | None]


def activation_pairs(model) -> list[dict]:
    """Activation (not weight) Q->DQ pairs in graph order, with what excluding their consumers needs."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rows = []
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in initializers:
            continue
        dqs = [n for n in consumers.get(node.output[0], []) if n.op_type == "DequantizeLinear"]
        if not dqs or node.input[1] not in initializers:
            continue
        scale = numpy_helper.to_array(initializers[node.input[1]]).ravel()
        zp_array = (numpy_helper.to_array(initializers[node.input[2]]) if len(node.input) > 2 and node.input[2]
                    else np.zeros(1, np.uint8))
        if scale.size != 1:
            continue  # per-channel activations: not what edgex's recipes produce
        qmin, qmax = integer_range(zp_array.dtype.name)
        zero_point = int(zp_array.ravel()[0])
        x = node.input[0]
        producer = producers.get(x)
        users = [c.name for dq in dqs for c in consumers.get(dq.output[0], [])]
        if not users and producer is not None:  # a graph output: only its producer can leave it float
            users = [producer.name]
        rows.append({"layer": x, "op": producer.op_type if producer is not None else "INPUT",
                     "node": producer.name if producer is not None else x, "q": node.name,
                     "names": ";".join([producer.name, *producer.input[1:]]) if producer is not None else x,
                     "dq": [dq.name for dq in dqs], "dq_outputs": [dq.output[0] for dq in dqs],
                     "scale": float(scale[0]), "zero_point": zero_point, "dtype": zp_array.dtype.name,
                     "qmin": qmin, "qmax": qmax, "folds_relu": zero_point == qmin,
                     "keep_float": list(dict.fromkeys(users))})
    return rows


def bypassed(model, rows: list[dict], keep: frozenset[str] = frozenset()):
    """A copy of `model` with every row's pair not in `keep` replaced by Relu (grid from 0) or Identity,
    writing the same output names, so consumers and graph outputs are untouched."""
    import onnx
    from onnx import helper

    by_q = {r["q"]: r for r in rows if r["layer"] not in keep}
    by_dq = {dq: r for r in by_q.values() for dq in r["dq"]}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for node in out.graph.node:
        if node.name in by_q:
            continue
        row = by_dq.get(node.name)
        if row is None:
            nodes.append(node)
            continue
        nodes.append(helper.make_node("Relu" if row["folds_relu"] else "Identity", [row["layer"]], [node.output[0]],
                                      name=f"{node.name}/edgex_bypass"))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def session(model, outputs: list[str] | None = None, optimized: bool = False, threads: int = 2):
    """An ORT CPU session of `model` exposing `outputs` too; unoptimized unless asked (QDQ semantics)."""
    import onnx
    import onnxruntime as ort

    if outputs:
        model = _copy(model)
        present = {o.name for o in model.graph.output}
        for name in dict.fromkeys(outputs):
            if name not in present:
                info = onnx.ValueInfoProto()
                info.name = name  # no type: ORT infers it, whatever the fused graph made of the tensor
                model.graph.output.append(info)
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def analyse(int8_path: Path, samples: list[np.ndarray], with_isolated: bool,
            progress: Callable[[], None] | None = None, make_taps: TapsFactory | None = None) -> dict:
    """Per-row error (int8 vs the artifact unquantized, and vs the FP32 source where `make_taps(names)`
    traces it), range use, clipped share, and the output error with only one pair kept."""
    import onnx

    model = onnx.load(str(int8_path))
    rows = activation_pairs(model)
    final = model.graph.output[0].name
    reference = bypassed(model, rows)
    source_taps = make_taps([r["layer"] for r in rows]) if make_taps else None
    names = [final] + [r["dq_outputs"][0] for r in rows]
    quant_session, ref_session = session(model, names), session(reference, names)
    input_name = ref_session.get_inputs()[0].name
    stats = {r["layer"]: ErrorStats() for r in rows}
    source = {r["layer"]: ErrorStats() for r in rows}
    use = {r["layer"]: RangeUse() for r in rows}
    output, agree, references = ErrorStats(), 0, []
    for sample in samples:
        qv = quant_session.run(names, {input_name: sample})
        rv = ref_session.run(names, {input_name: sample})
        references.append(rv[0])
        taps = source_taps(sample, dict(zip((r["layer"] for r in rows), qv[1:], strict=True))) if source_taps else {}
        for row, q, r in zip(rows, qv[1:], rv[1:], strict=True):
            name = row["layer"]
            stats[name].add(r, q)
            use[name].add_dequantized(q, row["scale"], row["zero_point"], row["qmin"], row["qmax"])
            use[name].add_reference(r, *grid_bounds(row["scale"], row["zero_point"], row["qmin"], row["qmax"]))
            source[name].add(taps.get(name), q)
        output.add(rv[0], qv[0])
        agree += int(np.argmax(qv[0]) == np.argmax(rv[0]))
        if progress:
            progress()
    del quant_session, ref_session
    result = {"rows": rows, "layers": stats, "source_layers": source if source_taps else {}, "range_use": use,
              "output": output, "agreement": agree / max(len(samples), 1), "isolated": {},
              "reference_outputs": references,
              "reference": "the artifact unquantized (activation Q/DQ pairs bypassed; folded ReLUs kept)"}
    if with_isolated:
        for row in rows:
            single = session(bypassed(model, rows, frozenset([row["layer"]])))
            result["isolated"][row["layer"]] = output_error(
                lambda x, s=single: s.run([final], {input_name: x})[0], samples, references)
            if progress:
                progress()
    return result


def _copy(model):
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
