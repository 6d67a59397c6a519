"""Activation ranges of an ONNX graph for ORT's quantizer: from another target's pass over the same images
(edgex.calibration.shared_ranges) when every tensor matches, else this graph's own pass, image by image.

ORT's own calibrators keep every intermediate output in memory (about 49 GB for 300 Xception images) and
take a global min/max that one outlier image can stretch. Here each image's min and max of every activation
come from a model augmented with ReduceMin/ReduceMax outputs and are reduced by an outlier-robust estimator.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from edgex.calibration.dataset import CalibrationSet
from edgex.calibration.ranges import RangeCollector
from edgex.calibration.shared_ranges import FINGERPRINT_IMAGES, RangeBook, fingerprint

_RANGE_SUFFIX = ("__edgex_min", "__edgex_max")
# Tensors fetched per run when fingerprinting: every activation of a 299x299 Xception at once held about 0.8 GB.
_FINGERPRINT_CHUNK = 24


def activation_ranges(prepared: Path, calib: CalibrationSet, method: str, tmp: Path, progress,
                      book: Path | None) -> tuple[dict[str, tuple[float, float]], str | None]:
    """The book's ranges when every activation here matches one of its tensors, else this graph's own pass (which
    then writes the book); and the target the ranges came from (None: this one)."""
    shared = RangeBook.load(book) if book is not None else None
    if shared is not None:
        model = onnx_load(prepared)
        replaced = ranges_quantize_static_replaces(model)
        wanted = [n for n in float_activations(model) if n not in replaced]
        found = shared.lookup(_fingerprints(prepared, wanted, calib))
        if found is not None:
            return with_donor_ranges(found, replaced), shared.made_by
    fingerprinted = book is not None and len(calib) >= FINGERPRINT_IMAGES
    ranges, prints = collect_ranges(prepared, calib, method, tmp, progress, fingerprinted=fingerprinted)
    if fingerprinted:
        RangeBook({name: ranges[name] for name in prints}, prints, "onnx").save(book)
    return ranges, None


def with_donor_ranges(ranges: dict[str, tuple[float, float]],
                      replaced: dict[str, str]) -> dict[str, tuple[float, float]]:
    """`ranges` plus each replaced tensor's, taken from the Relu/Clip output that quantize_static gives it."""
    ranges = dict(ranges)
    for name, donor in replaced.items():
        while donor in replaced:
            donor = replaced[donor]
        if donor in ranges:
            ranges[name] = ranges[donor]
    return ranges


def ranges_quantize_static_replaces(model) -> dict[str, str]:
    """tensor -> the Relu/Clip output whose range ORT's quantizer gives it (BaseQuantizer.adjust_tensor_ranges: a
    tensor read by one Relu or Clip alone takes that node's output range). A converter that fuses the activation
    into the conv (TFLite) has no such tensor to match, and needs none."""
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    return {node.input[0]: node.output[0] for node in model.graph.node
            if node.op_type in ("Relu", "Clip") and readers.get(node.input[0]) == 1}


def onnx_load(path: Path):
    import onnx

    return onnx.load(str(path))


def _fingerprints(model_path: Path, names: list[str], calib: CalibrationSet) -> dict[str, np.ndarray]:
    """Each named tensor's fingerprints on the first calibration images, every one made a graph output."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    _expose(model, names)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    del model
    prints: dict[str, list[np.ndarray]] = {}
    for sample in itertools.islice(calib.samples(), FINGERPRINT_IMAGES):
        _add_fingerprints(prints, session, names, sample)
    return {n: np.concatenate(p) for n, p in prints.items()}


def _expose(model, names: list[str]) -> None:
    """Make each named tensor computed by the graph one of its outputs."""
    from onnx import TensorProto, helper

    present = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    model.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                              for n in names if n not in present)


def _add_fingerprints(prints: dict[str, list[np.ndarray]], session, names: list[str], sample: np.ndarray) -> None:
    """One image's fingerprint of each named tensor (the input's own for the graph input), fetched a chunk of
    tensors at a time: ORT computes what is fetched and frees the rest."""
    input_name = session.get_inputs()[0].name
    computed = [n for n in names if n != input_name]
    values: dict[str, np.ndarray] = {}
    for start in range(0, len(computed), _FINGERPRINT_CHUNK):
        chunk = computed[start : start + _FINGERPRINT_CHUNK]
        values.update((n, fingerprint(v)) for n, v in zip(chunk, session.run(chunk, {input_name: sample}),
                                                          strict=True))
    for name in names:
        prints.setdefault(name, []).append(values[name] if name in values else fingerprint(sample))


def collect_ranges(model_path: Path, calib: CalibrationSet, method: str, tmp: Path, progress=None,
                   fingerprinted: bool = False) -> tuple[dict[str, tuple[float, float]], dict[str, np.ndarray]]:
    """Per-image min/max of every float activation, one image at a time, reduced by `method`; with
    `fingerprinted`, each observed activation's fingerprints on the first images too, from the same session.

    A tensor read by one Relu alone is not observed: quantize_static gives it the Relu's range
    (`ranges_quantize_static_replaces`), so it takes that one here too, and ORT is left free to fuse the
    Conv and its Relu (24 of the 299x299 Xception's 129 tensors, a third of the pass's time)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    replaced = ranges_quantize_static_replaces(model)
    augmented, names = _augment_with_range_outputs(model, skip=set(replaced))
    if fingerprinted:
        _expose(augmented, names)
    path = tmp / "augmented.onnx"
    onnx.save(augmented, str(path))
    del model, augmented
    # ORT's full optimizations (about 1.3x faster on Xception): every observed tensor also feeds its
    # ReduceMin/ReduceMax, so no fusion can swallow it; the ranges equal the unoptimized graph's (to 1e-5).
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    outputs = [n + s for n in names for s in _RANGE_SUFFIX]
    collector = RangeCollector(method)
    prints: dict[str, list[np.ndarray]] = {}
    for i, sample in enumerate(calib.samples()):
        values = session.run(outputs, {input_name: sample})
        for k, name in enumerate(names):
            collector.observe(name, values[2 * k], values[2 * k + 1])
        if fingerprinted and i < FINGERPRINT_IMAGES:
            _add_fingerprints(prints, session, names, sample)
        if progress is not None:
            progress()
    return with_donor_ranges(collector.ranges(), replaced), {n: np.concatenate(p) for n, p in prints.items()}


def float_activations(model) -> list[str]:
    """The graph's float input(s) and every float tensor its nodes compute, in graph order."""
    import onnx
    from onnx import TensorProto

    inferred = onnx.shape_inference.infer_shapes(model)
    float_tensors = {
        vi.name
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT
    }
    initializers = {init.name for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        for name in node.output:
            if name in float_tensors and name not in initializers and name not in names:
                names.append(name)
    return [i.name for i in model.graph.input if i.name not in initializers] + names


def _augment_with_range_outputs(model, skip: set[str] = frozenset()):
    """`model` with a ReduceMin and ReduceMax output for each float tensor not in `skip`; and their names."""
    from onnx import TensorProto, helper

    names = [n for n in float_activations(model) if n not in skip]
    graph = model.graph
    for name in names:
        for op, suffix in zip(("ReduceMin", "ReduceMax"), _RANGE_SUFFIX, strict=True):
            graph.node.append(helper.make_node(op, [name], [name + suffix], keepdims=0))
            graph.output.append(helper.make_tensor_value_info(name + suffix, TensorProto.FLOAT, []))
    return model, names
