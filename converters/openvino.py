"""Keras/SavedModel/ONNX -> OpenVINO IR; fp16 by weight compression, int8 by NNCF post-training quantization."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgex.calibration.dataset import CalibrationSet, need_calibration
from edgex.calibration.recipes import Recipe, recipe_named
from edgex.converters.base import ArtifactFiles, ConvertOptions

from edgex.errors import DataError, UsageError
from edgex.sources.load import Source

MODEL_FILE = "model.xml"


class _Replayable:
    """An iterable NNCF can walk more than once (statistics, then bias correction), decoding lazily."""

    def __init__(self, calib: CalibrationSet, progress=None):
        self.calib, self.progress = calib, progress

    def __iter__(self):
        for sample in self.calib.samples():
            if self.progress is not None:
                self.progress()
            yield sample

    def __len__(self) -> int:
        return len(self.calib)


def check_options(source: Source, options: ConvertOptions, keep_float: bool = False) -> None:
    """Every option is honoured on every source framework: nothing to refuse."""


def quantize_recipe(source: Source, options: ConvertOptions) -> Recipe | None:
    """int8, on every source framework: the ONNX QDQ graph read by OpenVINO or NNCF (calibration.recipes)."""
    if options.precision != "int8":
        return None
    from edgex.converters.onnx import cheap_float_export

    return recipe_named("openvino", options.recipe, options.range_estimator, qdq_first=cheap_float_export(source))


def needs_saved_model(source: Source, options: ConvertOptions) -> bool:
    """int8 from a source whose ONNX graph is made in-process reads the QDQ graph; NNCF's fallback recipes
    export the SavedModel when they run."""
    from edgex.converters.onnx import cheap_float_export

    return not (options.precision == "int8" and cheap_float_export(source))


def describe(path: Path) -> tuple[list[dict], list[dict]]:
    from edgex.telemetry import disable_vendor_telemetry

    disable_vendor_telemetry()
    import openvino as ov

    model = ov.Core().read_model(str(path))
    return [_describe(p) for p in model.inputs], [_describe(p) for p in model.outputs]


def convert(source: Source, staging: Path, options: ConvertOptions, calib: CalibrationSet | None,
            progress=None, keep_float: tuple[str, ...] = ()) -> ArtifactFiles:
    if options.precision == "int8":
        calib = need_calibration(calib)  # before the slow export
    from edgex.telemetry import disable_vendor_telemetry

    disable_vendor_telemetry()
    import openvino as ov

    timings: dict[str, float] = {}
    recipe = quantize_recipe(source, options)
    if recipe is not None and recipe.from_onnx_qdq:
        model, recipe = _from_onnx_qdq(source, staging, options, recipe, calib, progress, keep_float, timings)
    else:
        start = time.perf_counter()
        model = _float_model(source)
        timings["convert_model"] = time.perf_counter() - start
        if recipe is not None:
            import nncf

            start = time.perf_counter()
            names = _op_names(model, keep_float)
            ignored = nncf.IgnoredScope(names=names, validate=False) if names else None
            model = nncf.quantize(model, nncf.Dataset(_Replayable(calib, progress)), subset_size=len(calib),
                                  ignored_scope=ignored, preset=_preset(recipe), advanced_parameters=_advanced(recipe))
            timings["quantize"] = time.perf_counter() - start
    model.set_rt_info(source.preprocess.to_json(), ["edgex", "preprocess"])
    model.set_rt_info(json.dumps(source.classes), ["edgex", "classes"])
    if recipe:
        model.set_rt_info(json.dumps(recipe.to_dict()), ["edgex", "recipe"])
    out = staging / MODEL_FILE
    ov.save_model(model, str(out), compress_to_fp16=options.precision == "fp16")
    return ArtifactFiles(
        model=out,
        files=[out, out.with_suffix(".bin")],
        inputs=[_describe(p) for p in model.inputs],
        outputs=[_describe(p) for p in model.outputs],
        recipe=recipe.to_dict() if recipe else None,
        timings_s=timings,
    )


def _float_model(source: Source):
    """The source as an OpenVINO float model, in the artifact's layout."""

    if source.framework == "torch":  # converted from the nn.Module
        from edgex.sources.torch_export import to_openvino

        return to_openvino(source)
    from edgex.sources.onnx_source import float_graph  # an ONNX source: its checked float graph

    return _read_graph(float_graph(source) if source.framework == "onnx" else source.saved_model(),
                       f"OpenVINO could not convert {source.path}")


def _read_graph(graph: Path, failure: str):
    """`ov.convert_model` of an ONNX file or SavedModel; its untyped errors become DataError(`failure`: why)."""
    import openvino as ov

    try:
        return ov.convert_model(str(graph))
    except Exception as exc:  # OpenVINO raises its own untyped errors for bad graphs.
        raise DataError(f"{failure}: {exc}") from exc


def _from_onnx_qdq(source: Source, staging: Path, options: ConvertOptions, recipe: Recipe, calib: CalibrationSet,
                   progress, keep_float: tuple[str, ...], timings: dict[str, float]):
    """OpenVINO's model of the ONNX target's QDQ int8 graph, and the recipe with its notes: OpenVINO turns each
    QuantizeLinear/DequantizeLinear pair into its FakeQuantize and runs int8 kernels, as after NNCF."""
    from edgex.converters.onnx import qdq_int8

    if keep_float:
        raise UsageError(f"openvino recipe {recipe.name} cannot keep layers in float",
                         "Use one of the NNCF recipes (--recipe performance-w7) with --budget.")
    qdq = staging / "qdq.onnx.tmp"
    try:
        steps, recipe = qdq_int8(source, qdq, options, recipe, calib, progress)
        timings.update({f"ONNX QDQ graph: {step}": s for step, s in steps.items()})
        start = time.perf_counter()
        model = _read_graph(qdq, f"OpenVINO could not read the QDQ graph of {source.path}")
        timings["convert_model (QDQ graph)"] = time.perf_counter() - start
    finally:
        qdq.unlink(missing_ok=True)
    return model, recipe


def _preset(recipe: Recipe):
    import nncf

    return {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}[recipe.preset]


def _advanced(recipe: Recipe):
    """The recipe's overflow fix and range estimator as NNCF parameters (nothing recorded that did not run)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    params = {"overflow_fix": OverflowFix.ENABLE if recipe.weight_bits == 7 else OverflowFix.FIRST_LAYER}
    if recipe.range_estimator == "minmax":  # global min/max, as --calib-method minmax asks
        params["activations_range_estimator_params"] = RangeEstimatorParametersSet.MINMAX
    return AdvancedQuantizationParameters(**params)


def op_ordinals(model) -> dict[str, str]:
    """friendly name -> 'Type#k', the k-th op of its type in graph order: the same across conversions of one
    model where OpenVINO's generated names (Convolution_1234) are not. The one place this naming is made."""
    out, counts = {}, {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        out[op.get_friendly_name()] = f"{kind}#{counts.get(kind, 0)}"
        counts[kind] = counts.get(kind, 0) + 1
    return out


def _op_names(model, keep_float: tuple[str, ...]) -> list[str]:
    """Names of the ops to leave in float: plain names as given, 'Type#k' ordinals looked up in `model`."""
    wanted = set(keep_float)
    return [n for n in keep_float if "#" not in n] + [
        name for name, ordinal in op_ordinals(model).items() if ordinal in wanted]


def _describe(port) -> dict:
    return {"name": port.get_any_name(), "shape": str(port.get_partial_shape()),
            "dtype": port.get_element_type().get_type_name()}
