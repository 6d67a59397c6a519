"""Keras/SavedModel -> ONNX with tf2onnx (an ONNX source: its checked float graph); int8 by ONNX Runtime's QDQ
quantizer with edgex's ranges.

The activation ranges (edgex.converters.onnx_ranges: streaming, outlier-robust, or another target's pass over
the same images) are handed to `quantize_static` as a calibration cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from edgex.calibration.dataset import CalibrationSet, need_calibration
from edgex.calibration.recipes import Recipe, recipe_named
from edgex.calibration.shared_ranges import FINGERPRINT_IMAGES, book_path, shared_note
from edgex.converters import tf2onnx_cache
from edgex.converters.base import ArtifactFiles, ConvertOptions
from edgex.converters.onnx_ranges import activation_ranges

from edgex.errors import DataError
from edgex.options import TF2ONNX_ONE_CHILD_MB
from edgex.sources.load import Source

MODEL_FILE = "model.onnx"
RECIPES_SHARE_CALIBRATION = True  # one export, one set of ranges for every recipe: trying them all is cheap
_SHARED_FROM = "ranges.from"  # beside the ranges cache: the target whose pass they came from, if not this one's


def check_options(source: Source, options: ConvertOptions, keep_float: bool = False) -> None:
    """Every option is honoured on every source framework: nothing to refuse."""


def quantize_recipe(source: Source, options: ConvertOptions) -> Recipe | None:
    """int8: ORT static QDQ with edgex's ranges, on every source framework."""
    return recipe_named("onnx", options.recipe, options.range_estimator) if options.precision == "int8" else None


def prepare(source: Source, options: ConvertOptions) -> None:
    """Start tf2onnx now, in the background (it runs in child processes), so the export overlaps the
    other targets' builds; convert() waits for it. PyTorch and ONNX sources, and Keras Xceptions (through the
    PyTorch port, edgex.sources.keras_port_export), export in-process, in seconds, when converted."""
    if cheap_float_export(source):
        return
    key = tf2onnx_cache.export_key(source, options.opset)
    if tf2onnx_cache.has(key):  # convert() takes it from the cache
        return
    saved_model = source.saved_model()
    source.start(_export_key(options.opset),
                 lambda folder: _timed_export(saved_model, folder / "fp32.onnx", options.opset, key))


def needs_saved_model(source: Source, options: ConvertOptions) -> bool:
    """False when the export needs no tf2onnx (see `cheap_float_export`), or when an earlier run's fp32 export
    of this source is in the cache."""
    return not cheap_float_export(source) and not tf2onnx_cache.has(tf2onnx_cache.export_key(source, options.opset))


def cheap_float_export(source: Source) -> bool:
    """Whether the fp32 ONNX graph is made in-process in seconds (no tf2onnx child): PyTorch and ONNX sources,
    and Keras models the PyTorch port maps layer for layer. OpenVINO then reads the ONNX QDQ graph first."""
    from edgex.sources.keras_port_export import portable

    return source.framework in ("torch", "onnx") or portable(source)


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
    recipe = None
    if options.precision == "int8":
        steps, recipe = qdq_int8(source, out, options, quantize_recipe(source, options), calib, progress, keep_float)
        timings.update(steps)
    else:
        shutil.copyfile(_fp32_export(source, options, timings), out)  # the export stays for the next precision
    model = onnx.load(str(out))
    padded_macs = 0
    if recipe is not None:
        start = time.perf_counter()
        recipe, padded_macs = _shape_for_ort(model, recipe)
        timings["rewrite for ORT's kernels"] = time.perf_counter() - start
    set_metadata(model, source, recipe.to_dict() if recipe else None, padded_macs)
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


def qdq_int8(source: Source, out: Path, options: ConvertOptions, recipe: Recipe, calib: CalibrationSet,
             progress=None, keep_float: tuple[str, ...] = ()) -> tuple[dict[str, float], Recipe]:
    """The QDQ int8 graph of `recipe` (this target's, or another's: OpenVINO reads it), written to `out`; the fp32
    export and the activation ranges are made once per run, whichever target asks first. Returns the steps'
    seconds and `recipe` noting where its ranges came from."""
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edgex-onnx-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        shutil.copyfile(_fp32_export(source, options, timings), fp32)
        onnx_recipe = replace(recipe, target="onnx")
        shared = _shared_calibration(source, options, onnx_recipe)
        timings.update(quantize_int8(fp32, out, calib, onnx_recipe, Path(tmp), progress, nodes_to_exclude=keep_float,
                                     shared=shared,
                                     book=book_path(source.work_dir(), calib, onnx_recipe.range_estimator)))
    return timings, with_shared_note(recipe, shared)


def _shape_for_ort(model, recipe: Recipe) -> tuple[Recipe, int]:
    """The QDQ graph rewritten where ORT's CPU kernels would leave float ops or take a slow path
    (edgex.converters.onnx_ort_fusions, edgex.converters.onnx_channel_padding); returns the recipe recording what
    changed and the MACs the zero channels added. Only this target's artifact: OpenVINO reads the graph as
    quantize_static wrote it."""
    from edgex.converters.onnx_channel_padding import (
        CHANNEL_ALIGNMENT,
        INPUT_CHANNEL_ALIGNMENT,
        align_depthwise_channels,
        align_input_channels,
    )
    from edgex.converters.onnx_ort_fusions import shape_for_ort

    from edgex.bench.macs import onnx_macs

    sums, means = shape_for_ort(model)
    unpadded = onnx_macs(model)
    aligned = align_depthwise_channels(model)
    widened = align_input_channels(model)
    padded_macs = onnx_macs(model) - unpadded if aligned or widened else 0
    if sums:
        recipe = recipe.with_rewrite(f"relu_sums_as_adds: {sums} ReLU'd residual sums written by a second Add "
                                     "(ORT fuses it into QLinearAdd, no float requantization)")
    if means:
        recipe = recipe.with_rewrite(f"spatial_means_as_pools: {means} global average pool(s) as AveragePool "
                                     "(ORT runs QLinearAveragePool in NHWC, no float transpose)")
    if aligned:
        recipe = recipe.with_rewrite(f"align_depthwise_channels: {aligned} depthwise convs and their neighbours "
                                     f"padded with zero channels to a multiple of {CHANNEL_ALIGNMENT} "
                                     "(MLAS's fast depthwise kernel)")
    if widened:
        recipe = recipe.with_rewrite(f"align_input_channels: {widened} RGB input(s) widened to a multiple of "
                                     f"{INPUT_CHANNEL_ALIGNMENT} channels before quantization, by a MatMul "
                                     "(channels last) or a Pad (channels first) (MLAS's symmetric kernel for the "
                                     "stem instead of im2col and a GEMM)")
    return recipe, padded_macs


def with_shared_note(recipe: Recipe, shared: Path) -> Recipe:
    """The recipe, noting where its ranges came from when another target's pass made them."""
    origin = shared / _SHARED_FROM
    return recipe.with_note(shared_note(origin.read_text())) if origin.is_file() else recipe


def _shared_calibration(source: Source, options: ConvertOptions, recipe: Recipe) -> Path:
    """Where this source's prepared graph and activation ranges are kept for every recipe and target of a run."""
    return source.work_dir() / f"onnx-calibration-opset{options.opset}-{recipe.range_estimator}"


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
        from edgex.sources.keras_port_export import PORT_EXPORT_STEP, export_via_port, portable

        why_not = export_via_port(source, exported, options.opset) if portable(source) else "not portable"
        if why_not is None:
            timings[PORT_EXPORT_STEP] = time.perf_counter() - start
            return exported
        key = tf2onnx_cache.export_key(source, options.opset)
        fallback = "" if why_not == "not portable" else f" ({why_not})"
        if tf2onnx_cache.fetch(key, exported):
            timings["tf2onnx (reused from the cache of earlier runs)" + fallback] = time.perf_counter() - start
        else:  # none, or damaged: exported now (the SavedModel too, if no target needed it up front)
            export_with_tf2onnx(source.saved_model(), exported, options.opset)
            timings["tf2onnx" + fallback] = time.perf_counter() - start
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
                  nodes_to_exclude: tuple[str, ...] = (), shared: Path | None = None,
                  book: Path | None = None) -> dict[str, float]:
    """Static QDQ int8 with per-channel weights and streaming, outlier-robust activation ranges; returns
    the seconds of each step.

    The prepared graph and its activation ranges depend on the fp32 model, the images and the range
    estimator, not on the recipe: with `shared` (a folder kept across recipes) they are made once.
    With a `book` of another target's ranges over the same images (edgex.calibration.shared_ranges), they are
    taken when every tensor here matches one of its tensors; otherwise this target's pass writes the book.
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
        ranges, shared_from = activation_ranges(prepared, calib, recipe.range_estimator, tmp, progress, book)
        step = (f"activation ranges ({len(calib)} images)" if shared_from is None else
                f"activation ranges (the {shared_from} pass's, matched on {FINGERPRINT_IMAGES} images)")
        timings[step], start = time.perf_counter() - start, time.perf_counter()
        data = {name: (np.float32(lo), np.float32(hi)) for name, (lo, hi) in ranges.items()}
        if shared_from is not None:
            (folder / _SHARED_FROM).write_text(shared_from)
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache.with_suffix(".partial"))
        cache.with_suffix(".partial").rename(cache)  # a half-written cache is never taken for a whole one
    kept = folder / f"qdq-{_quantization_key(recipe)}.onnx" if shared is not None and not nodes_to_exclude else None
    if kept is not None and kept.is_file():  # another target (OpenVINO) or recipe quantized the same way
        shutil.copyfile(kept, out)
        timings["quantize_static (the same graph, made earlier in this run)"] = time.perf_counter() - start
        return timings
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
    if kept is not None:
        shutil.copyfile(out, kept.with_suffix(".partial"))
        kept.with_suffix(".partial").rename(kept)
    return timings


def _quantization_key(recipe: Recipe) -> str:
    """What quantize_static's result depends on besides the graph and its ranges."""
    return (f"a{recipe.activation_type}-w{recipe.weight_type}{recipe.weight_bits}"
            f"-{'pc' if recipe.per_channel_weights else 'pt'}-{'sym' if recipe.symmetric_weights else 'asym'}")


def set_metadata(model, source: Source, recipe: dict | None, padded_macs: int = 0) -> None:
    """Preprocessing, classes and recipe in ONNX metadata_props, readable by any ONNX tool; and the MACs of
    zero channels the graph was padded with, which MAC counts leave out (edgex.bench.macs)."""
    import json

    from edgex.bench.macs import PADDED_MACS_KEY

    entries = {
        "edgex.preprocess": source.preprocess.to_json(),
        "edgex.classes": json.dumps(source.classes),
        "edgex.source_sha256": source.describe()["sha256"],
    }
    if recipe:
        entries["edgex.recipe"] = json.dumps(recipe)
    if padded_macs:
        entries[PADDED_MACS_KEY] = str(padded_macs)
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
