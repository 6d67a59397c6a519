"""`diagnose(artifact, calib_data)`: the per-layer error table of one int8 artifact, worst layer first."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.artifact import read_manifest
from edgex.diagnose.metrics import ErrorStats, rounded
from edgex.diagnose.names import keras_layers, part_of_layer, primary_layer
from edgex.errors import MissingInputError, UsageError

DEFAULT_SAMPLES = 8


def load_samples(calib_data: Path, preprocess, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` preprocessed images (a batch of one each) drawn, seeded, from the calibration folder."""
    from edgex.calibration.dataset import CalibrationSet

    calib = CalibrationSet.from_folder(Path(calib_data), preprocess, size=count, seed=seed, parity_size=0)
    return list(calib.samples())


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
             reference: Path | None = None, seed: int = 0, progress: Callable[[], None] | None = None) -> dict:
    """Per-layer error of the int8 artifact in folder `artifact` on `samples` calibration images."""
    from edgex.preprocess import Preprocess

    artifact = Path(artifact)
    manifest = int8_manifest(artifact)
    target = manifest["target"]
    images = load_samples(calib_data, Preprocess.from_dict(manifest["preprocess"]), samples, seed)
    model_path = artifact / manifest["model_file"]
    with tempfile.TemporaryDirectory(prefix="edgex-diagnose-") as tmp:
        fp32 = None
        if target == "tflite":
            fp32 = Path(reference) if reference else _tflite_reference(artifact, manifest, Path(tmp))
        raw = analyse_model(target, model_path, images, isolated, fp32, progress)
    layers = keras_layers(Path(manifest.get("source", {}).get("path", "")) or None)
    from edgex.diagnose.trace import trace_siblings

    traces = trace_siblings(artifact, layers)
    rows = [_row(r, raw, layers, traces, target) for r in raw["rows"]]
    rows.sort(key=_severity)
    return {
        "artifact": str(artifact), "target": target, "samples": len(images), "calib_data": str(calib_data),
        "reference": raw.get("reference", "the artifact with its activation quantizers bypassed"),
        "output": {"sqnr_db": rounded(raw["output"].sqnr_db), "rel_error": rounded(raw["output"].rel_error, 4),
                   "top1_agreement": rounded(raw["agreement"], 4)},
        "isolated": bool(raw["isolated"]),
        "layers": rows,
    }


def analyse_model(target: str, model_path: Path, images: list[np.ndarray], isolated: bool = True,
                  fp32: Path | None = None, progress: Callable[[], None] | None = None) -> dict:
    """Raw per-layer statistics of one int8 model file ('rows', 'layers', 'range_use', 'isolated', ...).

    TFLite needs the float model `fp32` of the same conversion; ONNX and OpenVINO carry their own.
    """
    if target == "tflite":
        from edgex.diagnose import tflite as tfl_diag

        rows = tfl_diag.quantized_tensors(model_path, fp32)
        raw = tfl_diag.cumulative(model_path, fp32, rows, images, progress)
        raw["isolated"] = tfl_diag.isolated(fp32, rows, images, progress) if isolated else {}
        raw["rows"], raw["reference"] = rows, str(fp32)
        return raw
    if target == "onnx":
        from edgex.diagnose import onnx as onnx_diag

        return onnx_diag.analyse(model_path, images, isolated, progress)
    if target == "openvino":
        from edgex.diagnose import openvino as ov_diag

        return ov_diag.analyse(model_path, images, isolated, progress)
    raise UsageError(f"cannot diagnose target {target!r}", "Diagnose an onnx, openvino or tflite artifact.")


def ranked_layers(raw: dict) -> list[dict]:
    """The rows of `analyse_model`, most harmful first (by the one-layer-quantized output error)."""
    def key(row: dict) -> tuple[float, float]:
        iso = raw["isolated"].get(row["layer"])
        return (iso[0].sqnr_db if iso else math.inf, raw["layers"][row["layer"]].sqnr_db)

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
    from edgex.sources import load_source

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


def _row(row: dict, raw: dict, layers: dict[str, str], traces: dict, target: str) -> dict:
    name = row["layer"]
    hint = f"{name};{row.get('node', '')}"
    keras = primary_layer(hint, layers)
    stats: ErrorStats = raw["layers"][name]
    out = {"layer": name, "op": row["op"], "keras_layer": keras, "part": part_of_layer(hint) if keras else None,
           "sqnr_db": rounded(stats.sqnr_db), "rel_error": rounded(stats.rel_error, 4),
           "range_use": rounded(raw["range_use"][name].mean, 3)}
    if name in raw["isolated"]:
        iso, agreement = raw["isolated"][name]
        out.update(isolated_sqnr_db=rounded(iso.sqnr_db), isolated_rel_error=rounded(iso.rel_error, 4),
                   isolated_agreement=rounded(agreement, 4))
    out["keep_float"] = row["keep_float"]
    if keras:
        out["trace"] = {fmt: names for fmt, table in traces.items() if (names := table.get(keras))}
    return out


def _severity(row: dict) -> tuple[float, float]:
    """Sort key, worst first: the output error with only this layer quantized, then the layer's own SQNR."""
    iso = row.get("isolated_sqnr_db")
    own = row["sqnr_db"]
    return (iso if iso is not None else math.inf, own if own is not None else math.inf)
