"""Keras/SavedModel -> TFLite (LiteRT): fp32, fp16, dynamic-range and full-integer int8.

TFLiteConverter's calibrator keeps a global min/max per tensor, so one outlier image in the
representative set can stretch Xception's middle-flow ranges ~3x and wreck int8 accuracy
(see the README for the measured drop). edgex runs the converter's calibrate-only step, replaces
every recorded range with its own outlier-robust estimate collected image by image, then runs
the same MLIR quantizer the converter would have run.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from edgex.calibration.dataset import CalibrationSet, need_calibration
from edgex.calibration.ranges import RangeCollector
from edgex.calibration.recipes import Recipe, recipe_named
from edgex.calibration.shared_ranges import FINGERPRINT_IMAGES, RangeBook, book_path, fingerprint, shared_note
from edgex.converters.base import ArtifactFiles, ConvertOptions
from edgex.converters.tflite_xnnpack import fuse_relu_into_add

from edgex.errors import DataError, UsageError
from edgex.sources.load import Source, quiet_tensorflow

MODEL_FILE = "model.tflite"
METADATA_NAME = "edgex"
# The converter only needs to see every tensor once to record a range edgex then replaces.
_CONVERTER_CALIBRATION_SAMPLES = 2
KEEP_STABLEHLO_CONSTANT = b"keep_stablehlo_constant"


def convert(source: Source, staging: Path, options: ConvertOptions, calib: CalibrationSet | None,
            progress=None, keep_float: tuple[str, ...] = ()) -> ArtifactFiles:
    """`keep_float`: op names the int8 quantizer leaves in float (the accuracy budget's denylist)."""
    check_options(source, options, keep_float=bool(keep_float))
    if options.precision == "int8":
        calib = need_calibration(calib)  # before the slow export
    quiet_tensorflow()
    if source.framework == "torch" and options.precision != "int8":
        return _convert_torch(source, staging, options, calib, progress)
    import tensorflow as tf

    timings: dict[str, float] = {}
    recipe = None
    start = time.perf_counter()
    try:
        if source.framework == "torch":  # int8: litert-torch's float graph, then the same quantizer as Keras
            flat = _calibrate_only(_litert_torch_float(source), calib)
            timings["litert_torch (float graph)"] = time.perf_counter() - start
            recipe = quantize_recipe(source, options)
        else:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(source.saved_model()))
            if options.precision == "fp16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            elif options.precision == "dynamic":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            elif options.precision == "int8":
                recipe = quantize_recipe(source, options)
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.representative_dataset = lambda: _converter_samples(calib)
                converter._experimental_calibrate_only = True  # documented two-step quantization
            flat = converter.convert()
            timings["convert"] = time.perf_counter() - start
        if recipe is not None:
            book = book_path(source.work_dir(), calib, recipe.range_estimator)
            flat, recipe = _quantize_calibrated(flat, calib, recipe, options, keep_float, progress, timings, book)
    except (ValueError, RuntimeError) as exc:
        raise DataError(f"TFLiteConverter could not convert {source.path}: {exc}") from exc
    return _write_artifact(flat, staging, source, recipe, timings)


def _converter_samples(calib: CalibrationSet):
    """The few samples the calibrate-only step sees: every tensor once, for a range edgex then replaces."""
    return ([s] for s in calib.batches(1, calib.files[:_CONVERTER_CALIBRATION_SAMPLES]))


def _litert_torch_float(source: Source) -> bytes:
    from edgex.sources.torch_export import tflite_flatbuffer

    return without_kept_constants(tflite_flatbuffer(source, "fp32", None))


def without_kept_constants(flat: bytes) -> bytes:
    """Drop litert-torch's `keep_stablehlo_constant` metadata: while it is there, the MLIR quantizer keeps
    every constant (each conv weight) in float, so an "int8" model is float convs between QUANTIZE and
    DEQUANTIZE, 83 MB instead of 22 MB for Xception. Nothing else reads it once the graph is TFLite."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    kept = [entry for entry in model.metadata or [] if entry.name != KEEP_STABLEHLO_CONSTANT]
    if len(kept) == len(model.metadata or []):
        return flat
    model.metadata = kept
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _calibrate_only(float_flat: bytes, calib: CalibrationSet) -> bytes:
    """What TFLiteConverter's calibrate-only step does to its float graph, done to a float .tflite."""
    from tensorflow.lite.python.optimize.calibrator import Calibrator

    return bytes(Calibrator(float_flat).calibrate(lambda: _converter_samples(calib)))


def _quantize_calibrated(flat: bytes, calib: CalibrationSet, recipe: Recipe, options: ConvertOptions,
                         keep_float: tuple[str, ...], progress, timings: dict[str, float],
                         book: Path | None = None) -> tuple[bytes, Recipe]:
    """edgex's ranges into a calibrated float graph, then the MLIR quantizer and XNNPACK's graph shape."""
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    start = time.perf_counter()
    flat, shared_from = apply_robust_ranges(flat, calib, recipe.range_estimator, progress, book)
    timings[f"activation ranges ({len(calib)} images)" if shared_from is None else
            f"activation ranges (the {shared_from} pass's, matched on {FINGERPRINT_IMAGES} images)"] = \
        time.perf_counter() - start
    if shared_from is not None:
        recipe = recipe.with_note(shared_note(shared_from))
    start = time.perf_counter()
    io_type = tf.float32 if options.float_io else tf.int8
    flat = mlir_quantize(flat, disable_per_channel=False, input_data_type=io_type,
                         output_data_type=io_type, denylisted_nodes=list(keep_float) or None)
    flat, fused = fuse_relu_into_add(flat)
    if fused:
        recipe = recipe.with_rewrite(f"relu_into_add: {fused} standalone ReLUs fused into their ADD "
                                     "(XNNPACK delegates no int8 RELU)")
    timings["quantize"] = time.perf_counter() - start
    return flat, recipe


def _write_artifact(flat: bytes, staging: Path, source: Source, recipe: Recipe | None,
                    timings: dict[str, float]) -> ArtifactFiles:
    """model.tflite with edgex's metadata; the recipe's notes end with the IO types the artifact really has."""
    out = staging / MODEL_FILE
    out.write_bytes(flat)
    inputs, outputs = describe(out)
    if recipe is not None:
        recipe = recipe.with_note(io_note(inputs, outputs))
    described = recipe.to_dict() if recipe else None
    flat = add_metadata(flat, {"preprocess": source.preprocess.to_dict(), "classes": source.classes,
                               "recipe": described, "layout": source.preprocess.layout})
    out.write_bytes(flat)
    return ArtifactFiles(model=out, files=[out], inputs=inputs, outputs=outputs, recipe=described, timings_s=timings)


def io_note(inputs: list[dict], outputs: list[dict]) -> str:
    """'int8 input and output', 'float32 input, int8 output', ...: read from the artifact itself."""
    given = sorted({d["dtype"] for d in inputs})
    produced = sorted({d["dtype"] for d in outputs})
    if given == produced:
        return f"{'/'.join(given)} input and output"
    return f"{'/'.join(given)} input, {'/'.join(produced)} output"


def source_refusal(source: Source) -> UsageError | None:
    """Why this target cannot start from `source`, or None. ONNX -> TFLite needs onnx2tf, the one maintained
    converter: its 1.x line (the last for Python 3.11) downloads test images from GitHub while converting any
    image model, and 2.x, which no longer does, needs Python 3.12 and pins older onnx/onnxruntime than edgex's."""
    if source.framework != "onnx":
        return None
    return UsageError("tflite cannot be built from an ONNX source: no offline ONNX->TFLite converter fits edgex "
                      "(onnx2tf 1.x downloads test images at run time; 2.x needs Python 3.12 and older onnx)",
                      "Convert the original Keras or PyTorch model for tflite; use --target onnx or openvino here.")


def check_options(source: Source, options: ConvertOptions, keep_float: bool = False) -> None:
    """Refuse what the PyTorch route cannot do, before any work, rather than build a model that ignores it.

    int8 from a PyTorch source goes through the Keras path's quantizer (edgex's range estimators, layers
    kept in float); fp16 has no route from litert-torch.
    """
    refusal = source_refusal(source)
    if refusal is not None:
        raise refusal
    if source.framework == "torch" and options.precision == "fp16":
        raise UsageError("tflite from a PyTorch source (litert-torch) has no fp16",
                         "Use fp32, --dynamic or --int8 for tflite, or --fp16 with openvino.")


def quantize_recipe(source: Source, options: ConvertOptions) -> Recipe | None:
    """int8: edgex's recipe (both sources: Keras' converter or litert-torch gives the float graph);
    --dynamic from PyTorch: litert-torch PT2E's."""
    if source.framework == "torch" and options.precision == "dynamic":
        from edgex.sources.torch_export import pt2e_recipe

        return pt2e_recipe(dynamic=True)
    if options.precision != "int8":
        return None
    recipe = recipe_named("tflite", options.recipe, options.range_estimator)
    if source.framework == "torch":
        recipe = replace(recipe, notes=recipe.notes.replace("TFLiteConverter calibrate-only",
                                                            "litert-torch float graph, TFLite calibrate-only"))
    return recipe


def _convert_torch(source: Source, staging: Path, options: ConvertOptions, calib: CalibrationSet | None,
                   progress=None) -> ArtifactFiles:
    """PyTorch source, fp32 or --dynamic: litert-torch alone (PT2E dynamic-range for --dynamic)."""
    from edgex.sources.torch_export import tflite_flatbuffer

    start = time.perf_counter()
    flat = tflite_flatbuffer(source, options.precision, calib, progress)
    timings = {"litert_torch": time.perf_counter() - start}
    return _write_artifact(flat, staging, source, quantize_recipe(source, options), timings)


def apply_robust_ranges(calibrated: bytes, calib: CalibrationSet, method: str, progress=None,
                        book: Path | None = None) -> tuple[bytes, str | None]:
    """Replace the converter's global min/max of every calibrated tensor with edgex's estimate; returns the model
    and the target whose pass the ranges came from (None: this one's own).

    The ranges are collected on XNNPACK, as users run the model, with every calibrated tensor made a
    graph output so the delegate must write it: 3-4x faster on Xception than the builtin kernels with
    all tensors preserved, and the same ranges (to float rounding). With a `book` another target's pass
    wrote over the same images (edgex.calibration.shared_ranges), its ranges are taken when every tensor
    here matches one of its tensors."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    from edgex.runtimes import usable_cores

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    targets = {i: t for i, t in enumerate(graph.tensors)
               if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min)}
    inputs = [int(i) for i in graph.inputs]
    observed = graph.outputs  # kept to restore: the artifact's outputs stay what the converter made
    graph.outputs = np.asarray(sorted({*map(int, observed), *(i for i in targets if i not in inputs)}), np.int32)
    probe = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    graph.outputs = observed
    interpreter = Interpreter(model_content=probe, num_threads=usable_cores())
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    outputs = [d["index"] for d in interpreter.get_output_details() if d["index"] in targets]
    padded = _infinite_pads(model)

    def tensors(sample: np.ndarray):
        """(name, values) of every calibrated tensor on one image."""
        interpreter.set_tensor(input_index, sample)
        interpreter.invoke()
        if input_index in targets:
            yield str(input_index), sample
        for index in outputs:
            value = interpreter.get_tensor(index)
            if index in padded:  # the -inf border a max-pool pads with is no activation value
                value = value[np.isfinite(value)]
            yield str(index), value

    shared = RangeBook.load(book) if book is not None else None
    ranges = shared.lookup(_fingerprints(tensors, calib)) if shared is not None else None
    shared_from = shared.made_by if ranges is not None else None
    if ranges is None:
        collector, prints = RangeCollector(method), {}
        for i, sample in enumerate(calib.samples()):
            for name, value in tensors(sample):
                if value.size:
                    collector.observe_array(name, value)
                if i < FINGERPRINT_IMAGES:
                    prints.setdefault(name, []).append(fingerprint(value))
            if progress is not None:
                progress()
        ranges = collector.ranges()
        if book is not None and len(calib) >= FINGERPRINT_IMAGES:
            RangeBook(ranges, {n: np.concatenate(p) for n, p in prints.items()}, "tflite").save(book)
    interpreter = None  # the probe's buffers go before the flatbuffer is rewritten
    replaced = 0
    for index, tensor in targets.items():
        if str(index) in ranges:
            lo, hi = ranges[str(index)]
            tensor.quantization.min = np.asarray([lo], np.float32)
            tensor.quantization.max = np.asarray([hi], np.float32)
            replaced += 1
    if not replaced:
        raise DataError("TFLite calibration recorded no tensor ranges")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), shared_from


def _fingerprints(tensors, calib: CalibrationSet) -> dict[str, np.ndarray]:
    """Each calibrated tensor's fingerprints on the first calibration images, for a book's lookup."""
    prints: dict[str, list[np.ndarray]] = {}
    for sample in itertools.islice(calib.samples(), FINGERPRINT_IMAGES):
        for name, value in tensors(sample):
            prints.setdefault(name, []).append(fingerprint(value))
    return {n: np.concatenate(p) for n, p in prints.items()}


def _infinite_pads(model) -> set[int]:
    """Tensors written by PADV2 with an infinite pad value: how litert-torch lowers PyTorch's padded max-pool
    (timm's Xception). Their border is -inf by design; the quantizer clamps it to the range's low end."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = model.subgraphs[0]
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    found = set()
    for op in graph.operators:
        if codes[op.opcodeIndex] != schema.BuiltinOperator.PADV2 or len(op.inputs) < 3:
            continue
        constant = graph.tensors[int(op.inputs[2])]
        data = model.buffers[constant.buffer].data
        if constant.type != schema.TensorType.FLOAT32 or data is None or not len(data):
            continue
        if not np.all(np.isfinite(np.frombuffer(bytes(data), np.float32))):
            found.add(int(op.outputs[0]))
    return found


def add_metadata(flat: bytes, payload: dict) -> bytes:
    """Store edgex's JSON (preprocessing, classes, recipe) as a named TFLite model metadata buffer."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(payload).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(path: Path) -> dict | None:
    """The edgex metadata of a .tflite file, or None."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for entry in model.metadata or []:
        if entry.name in (METADATA_NAME, METADATA_NAME.encode()):
            return json.loads(bytes(model.buffers[entry.buffer].data).decode())
    return None


def describe(path: Path) -> tuple[list[dict], list[dict]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)

    def one(detail: dict) -> dict:
        scale, zero_point = detail["quantization"]
        entry = {"name": detail["name"], "shape": [int(d) for d in detail["shape"]],
                 "dtype": np.dtype(detail["dtype"]).name}
        if scale:
            entry["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
        return entry

    return ([one(d) for d in interpreter.get_input_details()],
            [one(d) for d in interpreter.get_output_details()])
