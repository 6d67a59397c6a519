"""`diagnose(artifact, calib_data)`: the per-layer error table of one int8 artifact, worst layer first,
against two references (the FP32 source, the artifact unquantized) and in the runtime configuration
users run. Every figure passes edgex.diagnose.invariants before it is returned."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.artifacts.publish import read_manifest
from edgex.diagnose.invariants import check
from edgex.diagnose.metrics import ErrorStats, agreement, rounded
from edgex.diagnose.names import keras_layers, part_of_layer, primary_layer
from edgex.errors import MissingInputError, UsageError

DEFAULT_SAMPLES = 8


def load_samples(calib_data: Path, preprocess, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` preprocessed images (a batch of one each) drawn, seeded, from the folder, in path order (the
    order edgex eval reads a folder in, so the source runs on the same batches)."""
    from edgex.calibration.dataset import CalibrationSet

    calib = CalibrationSet.from_folder(Path(calib_data), preprocess, size=count, seed=seed, parity_size=0)
    return list(calib.batches(1, files=sorted(calib.files)))


def int8_manifest(artifact: Path) -> dict:
    """The manifest of an int8 artifact folder; a clear error for anything else."""
    artifact = Path(artifact)
    if not (artifact / "manifest.json").is_file():
        raise MissingInputError(f"no manifest.json in {artifact}", "Pass an artifact folder written by edgex convert.")
    manifest = read_manifest(artifact)
    if manifest.get("precision") != "int8":
        raise UsageError(f"{artifact} is {manifest.get('precision')}, not int8", "Diagnose an int8 artifact.")
    return manifest


def diagnose(artifact: Path, calib_data: Path, samples: int = DEFAULT_SAMPLES, isolated: bool = True,
             reference: Path | None = None, seed: int = 0, progress: Callable[[], None] | None = None,
             source: Path | None = None, use_source: bool = True, emulate_cpu: str | None = None,
             runtime_config: bool = True) -> dict:
    """Per-layer error of the int8 artifact in folder `artifact` on `samples` images of `calib_data`."""
    from edgex.diagnose.source import SourceModel
    from edgex.preprocess import Preprocess

    artifact = Path(artifact)
    manifest = int8_manifest(artifact)
    target = manifest["target"]
    if emulate_cpu and target != "onnx":
        raise UsageError(f"--emulate-cpu applies to ONNX artifacts (this one is {target})")
    images = load_samples(calib_data, Preprocess.from_dict(manifest["preprocess"]), samples, seed)
    model_path = artifact / manifest["model_file"]
    layers = keras_layers(Path(manifest.get("source", {}).get("path", "")) or None)
    fp32_source = SourceModel(manifest, source, use_source)
    try:
        taps = (lambda names: fp32_source.taps(names, "NCHW" if target == "onnx" else "NHWC")) \
            if fp32_source.usable else None
        with tempfile.TemporaryDirectory(prefix="edgex-diagnose-") as tmp:
            fp32 = None
            if target == "tflite":
                fp32 = Path(reference) if reference else _tflite_reference(artifact, manifest, Path(tmp))
            raw = analyse_model(target, model_path, images, isolated, fp32, progress, taps)
        users, info = _users(target, model_path, images, manifest.get("precision"))
        source_logits = fp32_source.logits(images) if fp32_source.usable else None
        traced = fp32_source.traced
    finally:
        fp32_source.close()
    runtime = _runtime_section(target, model_path, images, raw, users, info, layers, source_logits, emulate_cpu) \
        if runtime_config else None
    from edgex.diagnose.trace import trace_siblings

    traces = trace_siblings(artifact, layers)
    rows = [_row(r, raw, layers, traces, traced) for r in raw["rows"]]
    rows.sort(key=_severity)
    unquantized = _outputs(raw.get("reference_outputs"))
    result = {
        "artifact": str(artifact), "target": target, "samples": len(images), "calib_data": str(calib_data),
        "reference": raw.get("reference", "the artifact with its activation quantizers bypassed"),
        "references": {
            "source": _source_part(fp32_source, source_logits, users, unquantized, info),
            "unquantized": {"what": raw.get("reference_what", raw.get("reference")),
                            "output": raw["output"].summary(raw["agreement"])},
        },
        "output": raw["output"].summary(raw["agreement"]),
        "runtime_config": runtime,
        "isolated": bool(raw["isolated"]),
        "layers": rows,
    }
    return check(result)


def _users(target: str, model_path: Path, images: list[np.ndarray], precision: str | None):
    """The artifact's outputs as edgex eval runs it, and what ran; a runtime that cannot load is a typed error."""
    from edgex.diagnose.source import users_logits

    return users_logits(target, model_path, images, precision)


def _runtime_section(target, model_path, images, raw, users, info, layers, source_logits, emulate_cpu) -> dict:
    from edgex.diagnose import runtime_config as rc

    if target == "onnx":
        return rc.fused_section(rc.onnx_fused(model_path, images, emulate_cpu), layers, source_logits)
    if target == "tflite":
        return rc.tflite_section(model_path, images, users)
    return rc.openvino_section(raw["quantized_outputs"], users, info)


def _outputs(values) -> np.ndarray | None:
    if not values:
        return None
    return np.concatenate([np.asarray(v, np.float32).reshape(1, -1) for v in values])


def _source_part(fp32_source, source_logits, users, unquantized, info) -> dict:
    """Reference 1: the FP32 source, compared at the model output with the artifact as users run it."""
    part = {"path": str(fp32_source.path) if fp32_source.usable else None, "note": fp32_source.note,
            "runtime": {k: info.get(k) for k in ("runtime", "version", "precision_ran", "providers", "delegate",
                                                 "inference_precision") if info.get(k) is not None}}
    if source_logits is None:
        part.update(output=None, unquantized_output=None)
        return part
    part["output"] = _compare(source_logits, users)
    part["unquantized_output"] = _compare(source_logits, unquantized) if unquantized is not None else None
    return part


def _compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    reference = np.asarray(reference, np.float32).reshape(len(reference), -1)
    candidate = np.asarray(candidate, np.float32).reshape(len(candidate), -1)
    stats = ErrorStats()
    for ref, cand in zip(reference, candidate, strict=True):
        stats.add(ref, cand)
    return stats.summary(agreement(reference, candidate))


def analyse_model(target: str, model_path: Path, images: list[np.ndarray], isolated: bool = True,
                  fp32: Path | None = None, progress: Callable[[], None] | None = None,
                  source_taps: Callable | None = None) -> dict:
    """Raw per-layer statistics of one int8 model file ('rows', 'layers', 'range_use', 'isolated', ...).

    TFLite needs the float model `fp32` of the same conversion; ONNX and OpenVINO carry their own.
    `source_taps(names)` makes the FP32 source's per-layer values for the rows it can trace.
    """
    if target == "tflite":
        from edgex.diagnose import tflite as tfl_diag

        rows = tfl_diag.quantized_tensors(model_path, fp32)
        taps = source_taps([r["layer"] for r in rows]) if source_taps else None
        raw = tfl_diag.cumulative(model_path, fp32, rows, images, progress, taps)
        raw["isolated"] = tfl_diag.isolated(fp32, rows, images, progress) if isolated else {}
        raw["rows"], raw["reference"] = rows, str(fp32)
        raw["reference_what"] = f"the float TFLite model of the same conversion ({fp32})"
        return raw
    if target == "onnx":
        from edgex.diagnose import onnx as onnx_diag

        return onnx_diag.analyse(model_path, images, isolated, progress, source_taps)
    if target == "openvino":
        from edgex.diagnose import openvino as ov_diag

        return ov_diag.analyse(model_path, images, isolated, progress)
    raise UsageError(f"cannot diagnose target {target!r}", "Diagnose an onnx, openvino or tflite artifact.")


def ranked_layers(raw: dict) -> list[dict]:
    """The rows of `analyse_model`, most harmful first (by the one-layer-quantized output error)."""
    def key(row: dict) -> tuple[float, float]:
        iso = raw["isolated"].get(row["layer"])
        iso_db = iso[0].sqnr_db if iso else None
        own = raw["layers"][row["layer"]].sqnr_db
        return (math.inf if iso_db is None else iso_db, math.inf if own is None else own)

    return sorted(raw["rows"], key=key)


def _tflite_reference(artifact: Path, manifest: dict, tmp: Path) -> Path:
    """The float TFLite model of the same source: the sibling tflite-fp32 artifact, else converted now."""
    sibling = artifact.parent / "tflite-fp32"
    if (sibling / "manifest.json").is_file():
        sib = read_manifest(sibling)
        if sib.get("source", {}).get("sha256") == manifest.get("source", {}).get("sha256"):
            return sibling / sib["model_file"]
    from edgex.converters.base import ConvertOptions
    from edgex.converters.tflite import convert
    from edgex.preprocess import Preprocess
    from edgex.sources.load import load_source

    path = Path(manifest.get("source", {}).get("path", ""))
    if not path.exists():
        raise MissingInputError(f"no float reference for {artifact}: source {path} is gone",
                                "Pass --reference FP32.tflite or keep the tflite-fp32 artifact beside it.")
    source = load_source(path)
    source.preprocess = Preprocess.from_dict(manifest["preprocess"])
    try:
        files = convert(source, tmp, ConvertOptions(precision="fp32"), None)
    finally:
        source.close()
    return files.model


def _row(row: dict, raw: dict, layers: dict[str, str], traces: dict, traced: dict[str, str]) -> dict:
    name = row["layer"]
    hint = f"{name};{row.get('names') or row.get('node', '')}"
    keras = primary_layer(hint, layers)
    stats: ErrorStats = raw["layers"][name]
    use = raw["range_use"][name]
    out = {"layer": name, "op": row["op"], "keras_layer": keras, "part": part_of_layer(hint) if keras else None,
           "sqnr_db": rounded(stats.sqnr_db), "rel_error": rounded(stats.rel_error, 4),
           "range_use": rounded(use.mean, 3), "clipped": rounded(use.clipped, 4)}
    source = raw.get("source_layers", {}).get(name)
    out.update(source_layer=traced.get(name) if source is not None and source.comparable else None,
               source_sqnr_db=rounded(source.sqnr_db) if source is not None else None,
               source_rel_error=rounded(source.rel_error, 4) if source is not None else None)
    if name in raw["isolated"]:
        iso, agreed = raw["isolated"][name]
        out.update(isolated_sqnr_db=rounded(iso.sqnr_db), isolated_rel_error=rounded(iso.rel_error, 4),
                   isolated_agreement=rounded(agreed, 4))
    out["keep_float"] = row["keep_float"]
    if keras:
        out["trace"] = {fmt: names for fmt, table in traces.items() if (names := table.get(keras))}
    return out


def _severity(row: dict) -> tuple[float, float]:
    """Sort key, worst first: the output error with only this layer quantized, then the layer's own SQNR."""
    iso = row.get("isolated_sqnr_db")
    own = row["sqnr_db"]
    return (iso if iso is not None else math.inf, own if own is not None else math.inf)
