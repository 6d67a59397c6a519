"""OpenVINO IR (NNCF int8): each activation FakeQuantize measured against the same IR with every
activation FakeQuantize bypassed, and the output error with only one FakeQuantize kept.

NNCF stores weights compressed (Convert/Multiply), not as FakeQuantize, so bypassing the
FakeQuantize nodes leaves the float activations of the artifact's own weights as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.diagnose.metrics import ErrorStats, RangeUse, output_error

_F32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}


def _fake_quants(model) -> list:
    return [op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"
            and op.input_value(0).get_node().get_type_name() != "Constant"]


def _bypass(model, keep: set[str]):
    """Rewire every activation FakeQuantize not in `keep` to pass its input through; returns their sources. One whose
    range starts at 0 passes it through a ReLU: ONNX Runtime's QDQ quantizer drops a ReLU whose quantized output
    clips at zero anyway, so in an IR read from a QDQ graph (recipe qdq-w7) that FakeQuantize is the ReLU."""
    import openvino.opset13 as ops

    sources = {}
    for fq in _fake_quants(model):
        name = fq.get_friendly_name()
        source = fq.input_value(0)
        sources[name] = source
        if name in keep:
            continue
        low = np.asarray(fq.input_value(1).get_node().get_data())
        passed = ops.relu(source).output(0) if low.size and np.all(low == 0) else source
        for target in list(fq.output(0).get_target_inputs()):
            target.replace_source_output(passed)
    model.validate_nodes_and_infer_types()
    return sources


def _scale(fq) -> float:
    """int8 step of a FakeQuantize: (output_high - output_low) / (levels - 1), first channel."""
    lo = fq.input_value(3).get_node().get_data().ravel()
    hi = fq.input_value(4).get_node().get_data().ravel()
    return float((hi[0] - lo[0]) / max(fq.get_levels() - 1, 1))


def _grid(fq) -> tuple[np.ndarray, np.ndarray]:
    """(output_low, output_high) of a FakeQuantize, as arrays that broadcast against its tensor."""
    lo = np.asarray(fq.input_value(3).get_node().get_data(), np.float64)
    hi = np.asarray(fq.input_value(4).get_node().get_data(), np.float64)
    return lo, hi


# Ops NNCF adds to an int8 IR (weight decompression, quantizers): their ordinals differ from the float model's.
_ADDED_BY_NNCF = ("FakeQuantize", "Convert", "Multiply", "Subtract", "Constant")


def rows_of(model) -> list[dict]:
    rows = []
    from edgex.converters.openvino import op_ordinals

    ordinals = op_ordinals(model)
    for fq in _fake_quants(model):
        producer = fq.input_value(0).get_node()
        users = [ordinals[t.get_node().get_friendly_name()] if t.get_node().get_type_name() not in _ADDED_BY_NNCF
                 else t.get_node().get_friendly_name() for t in fq.output(0).get_target_inputs()]
        lo, hi = _grid(fq)
        rows.append({"layer": fq.get_friendly_name(), "op": producer.get_type_name(),
                     "node": producer.get_friendly_name(), "scale": _scale(fq), "levels": int(fq.get_levels()),
                     "low": lo, "high": hi, "keep_float": users})
    return rows


def _output_positions(model, added) -> list[int]:
    """Where each output `add_outputs` returned sits among the model's outputs: a port that already was an output
    (the QDQ route's last FakeQuantize is the model's output) or was asked for twice is not added again, so the
    compiled model's values are not in the order asked."""
    def key(output) -> tuple[str, int]:
        return output.get_node().get_friendly_name(), output.get_index()

    positions = {key(output): k for k, output in enumerate(model.outputs)}
    return [positions[key(output)] for output in added]


def analyse(xml_path: Path, samples: list[np.ndarray], with_isolated: bool,
            progress: Callable[[], None] | None = None) -> dict:
    import openvino as ov

    core = ov.Core()
    quant = core.read_model(str(xml_path))
    rows = rows_of(quant)
    quant_at = _output_positions(quant, quant.add_outputs([fq.output(0) for fq in _fake_quants(quant)]))
    reference = core.read_model(str(xml_path))
    sources = _bypass(reference, set())
    ref_ports = [sources[r["layer"]] for r in rows]
    from_input = {i for i, port in enumerate(ref_ports) if port.get_node().get_type_name() == "Parameter"}
    ref_at = _output_positions(reference, reference.add_outputs([p for i, p in enumerate(ref_ports)
                                                                 if i not in from_input]))
    compiled_q = core.compile_model(quant, "CPU", _F32)
    compiled_r = core.compile_model(reference, "CPU", _F32)
    stats = {r["layer"]: ErrorStats() for r in rows}
    use = {r["layer"]: RangeUse() for r in rows}
    output, agree, references, quantized = ErrorStats(), 0, [], []
    for sample in samples:
        q_all = list(compiled_q(sample).values())
        qv = [q_all[0], *(q_all[k] for k in quant_at)]
        quantized.append(qv[0])
        rv_all = list(compiled_r(sample).values())
        rv, extra = rv_all[0], iter([rv_all[k] for k in ref_at])
        references.append(rv)
        for i, row in enumerate(rows):
            ref_value = sample if i in from_input else next(extra)
            stats[row["layer"]].add(ref_value, qv[1 + i])
            step = (row["high"] - row["low"]) / max(row["levels"] - 1, 1)
            use[row["layer"]].add_codes(np.rint((qv[1 + i] - row["low"]) / np.where(step > 0, step, 1)), 0,
                                        row["levels"] - 1)
            use[row["layer"]].add_reference(ref_value, row["low"] - step / 2, row["high"] + step / 2)
        output.add(rv, qv[0])
        agree += int(np.argmax(qv[0]) == np.argmax(rv))
        if progress:
            progress()
    result = {"rows": rows, "layers": stats, "range_use": use, "output": output, "source_layers": {},
              "agreement": agree / max(len(samples), 1), "isolated": {}, "reference_outputs": references,
              "quantized_outputs": quantized,
              "reference": "the artifact unquantized (activation FakeQuantize bypassed), f32"}
    if with_isolated:
        for row in rows:
            single = core.read_model(str(xml_path))
            _bypass(single, {row["layer"]})
            compiled = core.compile_model(single, "CPU", _F32)
            result["isolated"][row["layer"]] = output_error(
                lambda x, compiled=compiled: list(compiled(x).values())[0], samples, references)
            if progress:
                progress()
    return result

