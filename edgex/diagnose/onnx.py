"""ONNX QDQ: each activation's QuantizeLinear -> DequantizeLinear pair, measured against the same graph
with every activation pair bypassed (the float model, weights as the artifact stores them).

The QDQ artifact is self-contained for this: bypassing a pair rewires its consumers to the float
tensor, so the reference shares every name with the int8 graph, and keeping exactly one pair
measures what that quantizer alone costs at the output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.diagnose.metrics import ErrorStats, RangeUse, output_error


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
        if not dqs:
            continue
        scale = float(numpy_helper.to_array(initializers[node.input[1]]).ravel()[0])
        zp_array = numpy_helper.to_array(initializers[node.input[2]]) if len(node.input) > 2 else np.zeros(1, np.uint8)
        x = node.input[0]
        producer = producers.get(x)
        users = [c.name for dq in dqs for c in consumers.get(dq.output[0], [])]
        if not users and producer is not None:  # a graph output: only its producer can leave it float
            users = [producer.name]
        rows.append({"layer": x, "op": producer.op_type if producer is not None else "INPUT",
                     "node": producer.name if producer is not None else x, "q": node.name,
                     "dq": [dq.name for dq in dqs], "dq_outputs": [dq.output[0] for dq in dqs],
                     "scale": scale, "zero_point": int(zp_array.ravel()[0]), "dtype": zp_array.dtype.name,
                     "keep_float": list(dict.fromkeys(users))})
    return rows


def _strip(model, rows: list[dict]):
    """A copy of `model` with every row's pair bypassed; returns (copy, {row layer: [(node, input slot)]})."""
    import onnx

    bypassed = onnx.ModelProto()
    bypassed.CopyFrom(model)
    drop = {name for r in rows for name in [r["q"], *r["dq"]]}
    redirect = {out: r["layer"] for r in rows for out in r["dq_outputs"]}
    rewired: dict[str, list[tuple[str, int]]] = {r["layer"]: [] for r in rows}
    kept = [n for n in bypassed.graph.node if n.name not in drop]
    for node in kept:
        for slot, name in enumerate(node.input):
            if name in redirect:
                node.input[slot] = redirect[name]
                rewired[redirect[name]].append((node.name, slot))
    for output in bypassed.graph.output:
        if output.name in redirect:
            output.name = redirect[output.name]
    del bypassed.graph.node[:]
    bypassed.graph.node.extend(kept)
    return bypassed, rewired


def _session(model, outputs: list[str] | None = None):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if outputs:
        present = {o.name for o in model.graph.output}
        for name in outputs:
            if name not in present:
                model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def analyse(int8_path: Path, samples: list[np.ndarray], with_isolated: bool,
            progress: Callable[[], None] | None = None) -> dict:
    import onnx

    model = onnx.load(str(int8_path))
    rows = activation_pairs(model)
    final = model.graph.output[0].name
    reference, rewired = _strip(model, rows)
    quant_outputs = [final] + [r["dq_outputs"][0] for r in rows]
    ref_outputs = [final] + [r["layer"] for r in rows]
    ref_final = reference.graph.output[0].name
    ref_outputs[0] = ref_final
    quant_session = _session(_copy(model), quant_outputs)
    ref_session = _session(_copy(reference), ref_outputs)
    input_name = ref_session.get_inputs()[0].name
    stats = {r["layer"]: ErrorStats() for r in rows}
    use = {r["layer"]: RangeUse() for r in rows}
    output, agree, references = ErrorStats(), 0, []
    for sample in samples:
        qv = quant_session.run(quant_outputs, {input_name: sample})
        rv = ref_session.run(ref_outputs, {input_name: sample})
        references.append(rv[0])
        for row, q, r in zip(rows, qv[1:], rv[1:], strict=True):
            stats[row["layer"]].add(r, q)
            use[row["layer"]].add(r, row["scale"], 65535 if "16" in row["dtype"] else 255)
        output.add(rv[0], qv[0])
        agree += int(np.argmax(qv[0]) == np.argmax(rv[0]))
        if progress:
            progress()
    del quant_session, ref_session
    result = {"rows": rows, "layers": stats, "range_use": use, "output": output,
              "agreement": agree / max(len(samples), 1), "isolated": {}}
    if with_isolated:
        by_name = {n.name: n for n in model.graph.node}
        for row in rows:
            single = _copy(reference)
            position = _after_producer(single, row["layer"])
            single.graph.node.insert(position, by_name[row["q"]])
            for offset, dq in enumerate(row["dq"]):
                single.graph.node.insert(position + 1 + offset, by_name[dq])
            nodes = {n.name: n for n in single.graph.node}
            users = {}
            for dq_out, dq in zip(row["dq_outputs"], row["dq"], strict=True):
                users.update({c.name: dq_out for c in model.graph.node if dq_out in c.input and c.name != dq})
            for node_name, slot in rewired[row["layer"]]:
                if node_name in users:
                    nodes[node_name].input[slot] = users[node_name]
            session = _session(single)
            result["isolated"][row["layer"]] = output_error(
                lambda x, session=session: session.run([ref_final], {input_name: x})[0], samples, references)
            if progress:
                progress()
    return result


def _copy(model):
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _after_producer(model, tensor: str) -> int:
    for i, node in enumerate(model.graph.node):
        if tensor in node.output:
            return i + 1
    return 0
