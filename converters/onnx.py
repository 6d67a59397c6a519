"""Keras/SavedModel -> ONNX with tf2onnx (an ONNX source: its checked float graph); int8 by ONNX Runtime's QDQ
quantizer with edgex's ranges.

ORT's own calibrators keep every intermediate output in memory (about 49 GB for 300 Xception
images) and take a global min/max that one outlier image can stretch. Here each activation's
range is collected image by image from a model augmented with ReduceMin/ReduceMax outputs,
reduced with an outlier-robust estimator, and handed to `quantize_static` as a calibration cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from edgex.calibration.dataset import CalibrationSet, need_calibration
from edgex.calibration.ranges import RangeCollector
from edgex.calibration.recipes import Recipe, recipe_named
from edgex.converters import tf2onnx_cache
from edgex.converters.base import ArtifactFiles, ConvertOptions

from edgex.errors import DataError
from edgex.options import TF2ONNX_ONE_CHILD_MB
from edgex.sources.load import Source

MODEL_FILE = "model.onnx"
RECIPES_SHARE_CALIBRATION = True  # one export, one set of ranges for every recipe: trying them all is cheap
_RANGE_SUFFIX = ("__edgex_min", "__edgex_max")


def check_options(source: Source, options: ConvertOptions, keep_float: bool = False) -> None:
    """Every option is honoured on every source framework: nothing to refuse."""


def quantize_recipe(source: Source, options: ConvertOptions) -> Recipe | None:
    """int8: ORT static QDQ with edgex's ranges, on every source framework."""
    return recipe_named("onnx", options.recipe, options.range_estimator) if options.precision == "int8" else None


def prepare(source: Source, options: ConvertOptions) -> None:
    """Start tf2onnx now, in the background (it runs in child processes), so the export overlaps the
    other targets' builds; convert() waits for it. PyTorch and ONNX sources export in-process, when converted."""
    if source.framework in ("torch", "onnx"):
        return
    key = tf2onnx_cache.export_key(source, options.opset)
    if tf2onnx_cache.has(key):  # convert() takes it from the cache
        return
    saved_model = source.saved_model()
    source.start(_export_key(options.opset),
                 lambda folder: _timed_export(saved_model, folder / "fp32.onnx", options.opset, key))


def needs_saved_model(source: Source, options: ConvertOptions) -> bool:
    """False when an earlier run's fp32 export of this source is in the cache: no SavedModel, no tf2onnx."""
    return not tf2onnx_cache.has(tf2onnx_cache.export_key(source, options.opset))


def _export_key(opset: int) -> str:
    """The name prepare() starts the fp32 export under, and convert() looks it up by."""
    return f"onnx-opset{opset}"


def _timed_export(saved_model: Path, out: Path, opset: int, key: str) -> tuple[Path, float]:
    start = time.perf_counter()
    export_with_tf2onnx(saved_model, out, opset)
    seconds = time.perf_counter() - start
    tf2onnx_cache.store(key, out)
    return out, seconds


def describe(path: Path) -> tuple[list[dict], list[dict]]:
    import onnx

    model = onnx.load(str(path))
    return _describe(model.graph.input, model), _describe(model.graph.output, model)


def convert(source: Source, staging: Path, options: ConvertOptions, calib: CalibrationSet | None,
            progress=None, keep_float: tuple[str, ...] = ()) -> ArtifactFiles:
    import onnx

    if options.precision == "int8":
        calib = need_calibration(calib)  # before the slow export
    timings: dict[str, float] = {}
    out = staging / MODEL_FILE
    with tempfile.TemporaryDirectory(prefix="edgex-onnx-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        shutil.copyfile(_fp32_export(source, options, timings), fp32)  # the export stays for the next recipe
        recipe = None
        if options.precision == "int8":
            recipe = quantize_recipe(source, options)
            shared = source.work_dir() / f"onnx-calibration-opset{options.opset}-{recipe.range_estimator}"
            timings.update(quantize_int8(fp32, out, calib, recipe, Path(tmp), progress, nodes_to_exclude=keep_float,
                                         shared=shared))
        else:
            shutil.move(fp32, out)  # not replace(): the output may be on another filesystem than /tmp
        model = onnx.load(str(out))
        set_metadata(model, source, recipe.to_dict() if recipe else None)
        onnx.save(model, str(out))
        onnx.checker.check_model(str(out), full_check=True)
    return ArtifactFiles(
        model=out,
        files=[out],
        inputs=_describe(model.graph.input, model),
        outputs=_describe(model.graph.output, model),
        recipe=recipe.to_dict() if recipe else None,
        timings_s=timings,
    )


def _fp32_export(source: Source, options: ConvertOptions, timings: dict[str, float]) -> Path:
    """The fp32 ONNX export, made once per source (every recipe and precision starts from it); its seconds
    go into `timings` the first time only."""
    start = time.perf_counter()
    started = source.started(_export_key(options.opset))
    if started is not None:  # prepare() began it while other targets were built
        exported, seconds = started.result()
        if not exported.with_suffix(".used").exists():
            exported.with_suffix(".used").touch()
            timings["tf2onnx (in the background)"] = seconds
            timings["waiting for tf2onnx"] = time.perf_counter() - start
        return exported
    folder = source.work_dir() / _export_key(options.opset)
    exported = folder / "fp32.onnx"
    if exported.is_file():
        return exported
    folder.mkdir(exist_ok=True)
    if source.framework == "torch":  # PyTorch source: dynamo exporter, then the same int8 path
        from edgex.sources.torch_export import export_onnx

        export_onnx(source, exported, options.opset)
        timings["torch.onnx.export"] = time.perf_counter() - start
    elif source.framework == "onnx":  # ONNX source: its checked float graph, then the same int8 path
        from edgex.sources.onnx_source import float_graph

        shutil.copyfile(float_graph(source), exported)
        timings["check the source graph"] = time.perf_counter() - start
    else:
        key = tf2onnx_cache.export_key(source, options.opset)
        if tf2onnx_cache.fetch(key, exported):
            timings["tf2onnx (reused from the cache of earlier runs)"] = time.perf_counter() - start
        else:  # none, or damaged: exported now (the SavedModel too, if no target needed it up front)
            export_with_tf2onnx(source.saved_model(), exported, options.opset)
            timings["tf2onnx"] = time.perf_counter() - start
            tf2onnx_cache.store(key, exported)
    return exported


def export_with_tf2onnx(saved_model: Path, out: Path, opset: int) -> None:
    """tf2onnx in child processes: its TF graph state and logs stay out of ours. Freeze and convert run in
    two children (peak 2.8 GB instead of 5.4 GB on Xception, edgex.converters.tf2onnx_export), in one for a
    small model; if that path fails, tf2onnx's documented CLI runs as the fallback and its error is the one
    reported."""
    from edgex.converters.tf2onnx_export import CATCH_ERRORS_ENV

    graph = out.with_name(out.stem + ".frozen.pb")
    stage = [sys.executable, "-m", "edgex.converters.tf2onnx_export"]
    try:
        if sum(p.stat().st_size for p in saved_model.rglob("*") if p.is_file()) < TF2ONNX_ONE_CHILD_MB * 2**20:
            done = subprocess.run([*stage, "both", str(saved_model), str(graph), str(out), str(opset)],
                                  capture_output=True, text=True, env=_quiet_env() | {CATCH_ERRORS_ENV: "FALSE"})
            if done.returncode == 0 and out.is_file():
                return
        freeze = subprocess.run([*stage, "freeze", str(saved_model), str(graph)], capture_output=True, text=True,
                                env=_quiet_env())
        if freeze.returncode == 0:
            for catch in (False, True):  # without tf2onnx's per-optimizer graph copies first
                env = _quiet_env() | ({} if catch else {CATCH_ERRORS_ENV: "FALSE"})
                done = subprocess.run([*stage, "convert", str(graph), str(out), str(opset)], capture_output=True,
                                      text=True, env=env)
                if done.returncode == 0 and out.is_file():
                    return
    finally:
        graph.unlink(missing_ok=True)
        graph.with_suffix(".json").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--output", str(out),
           "--opset", str(opset), "--signature_def", "serving_default"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_quiet_env())
    if done.returncode != 0 or not out.is_file():
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise DataError(f"tf2onnx could not convert {saved_model}: {tail}")


def _quiet_env() -> dict:
    import os

    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def quantize_int8(fp32: Path, out: Path, calib: CalibrationSet, recipe, tmp: Path, progress=None,
                  nodes_to_exclude: tuple[str, ...] = (), shared: Path | None = None) -> dict[str, float]:
    """Static QDQ int8 with per-channel weights and streaming, outlier-robust activation ranges; returns
    the seconds of each step.

    The prepared graph and its activation ranges depend on the fp32 model, the images and the range
    estimator, not on the recipe: with `shared` (a folder kept across recipes) they are made once.
    `recipe.weight_bits == 7` is ORT's reduce_range (weights only): it keeps every pair of u8*s8
    products inside the int16 that ORT's AVX2 kernels (no VNNI) accumulate into."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    timings, start = {}, time.perf_counter()
    folder = shared or tmp
    prepared, cache = folder / "prepared.onnx", folder / "ranges.json"
    if not cache.is_file():
        folder.mkdir(exist_ok=True)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        timings["quant_pre_process"], start = time.perf_counter() - start, time.perf_counter()
        ranges = collect_ranges(prepared, calib, recipe.range_estimator, tmp, progress)
        timings[f"activation ranges ({len(calib)} images)"], start = time.perf_counter() - start, time.perf_counter()
        data = {name: (np.float32(lo), np.float32(hi)) for name, (lo, hi) in ranges.items()}
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache.with_suffix(".partial"))
        cache.with_suffix(".partial").rename(cache)  # a half-written cache is never taken for a whole one
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    quantize_static(
        str(prepared),
        str(out),
        calibration_data_reader=None,
        calibration_cache_path=str(cache),
        quant_format=QuantFormat.QDQ,
        per_channel=recipe.per_channel_weights,
        activation_type=qtype[recipe.activation_type],
        weight_type=qtype[recipe.weight_type],
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=list(nodes_to_exclude) or None,
        reduce_range=recipe.weight_bits == 7,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": recipe.symmetric_weights},
    )
    timings["quantize_static"] = time.perf_counter() - start
    return timings


def collect_ranges(model_path: Path, calib: CalibrationSet, method: str, tmp: Path,
                   progress=None) -> dict[str, tuple[float, float]]:
    """Per-image min/max of every float activation, one image at a time, reduced by `method`."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    augmented, names = _augment_with_range_outputs(model)
    path = tmp / "augmented.onnx"
    onnx.save(augmented, str(path))
    # ORT's full optimizations (about 1.3x faster on Xception): every observed tensor also feeds its
    # ReduceMin/ReduceMax, so no fusion can swallow it; the ranges equal the unoptimized graph's (to 1e-5).
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    outputs = [n + s for n in names for s in _RANGE_SUFFIX]
    collector = RangeCollector(method)
    for sample in calib.samples():
        values = session.run(outputs, {input_name: sample})
        for i, name in enumerate(names):
            collector.observe(name, values[2 * i], values[2 * i + 1])
        if progress is not None:
            progress()
    return collector.ranges()


def _augment_with_range_outputs(model):
    """Copy of `model` with a ReduceMin and ReduceMax output for each float tensor."""
    import onnx
    from onnx import TensorProto, helper

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
    names = [i.name for i in model.graph.input if i.name not in initializers] + names
    graph = model.graph
    for name in names:
        for op, suffix in zip(("ReduceMin", "ReduceMax"), _RANGE_SUFFIX, strict=True):
            graph.node.append(helper.make_node(op, [name], [name + suffix], keepdims=0))
            graph.output.append(helper.make_tensor_value_info(name + suffix, TensorProto.FLOAT, []))
    return model, names


def set_metadata(model, source: Source, recipe: dict | None) -> None:
    """Preprocessing, classes and recipe in ONNX metadata_props, readable by any ONNX tool."""
    import json

    entries = {
        "edgex.preprocess": source.preprocess.to_json(),
        "edgex.classes": json.dumps(source.classes),
        "edgex.source_sha256": source.describe()["sha256"],
    }
    if recipe:
        entries["edgex.recipe"] = json.dumps(recipe)
    del model.metadata_props[:]
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


def _describe(values, model) -> list[dict]:
    from onnx import helper

    initializers = {init.name for init in model.graph.initializer}
    out = []
    for vi in values:
        if vi.name in initializers:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
        out.append({"name": vi.name, "shape": shape,
                    "dtype": helper.tensor_dtype_to_np_dtype(tt.elem_type).name})
    return out
