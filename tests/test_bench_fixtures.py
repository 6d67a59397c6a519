"""Tiny int8 artifacts shared by the bench, eval, report and pipeline tests (built once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import build_once, run_edgex, run_shared_dir


def _convert_once(tiny_model: Path, images_dir: Path, base: Path, target: str) -> Path:
    def convert(_folder: Path) -> None:
        done = run_edgex("convert", "--model", tiny_model, "--target", target, "--int8", "--calib-data",
                         images_dir, "--calib-size", "24", "--output", base, "-q")
        assert done.returncode == 0, done.stderr

    return build_once(base / "tiny_xception" / f"{target}-int8", convert)


def tiny_int8_artifacts(tiny_model: Path, images_dir: Path, tmp_path_factory,
                        targets: tuple[str, ...] = ("onnx", "tflite")) -> Path:
    """OUT/tiny_xception/{onnx,tflite}-int8 (tflite has int8 input and output: the quantized-io path).

    Each test module wraps this in its own `tiny_artifacts` fixture; the folder is shared, so the
    conversions run once per session, whatever the number of xdist workers."""
    base = run_shared_dir(tmp_path_factory, "bench-artifacts")
    for target in targets:
        _convert_once(tiny_model, images_dir, base, target)
    return base / "tiny_xception"


def truncated_copy(folder: Path, destination: Path) -> Path:
    """A copy of an artifact whose model file is cut to a tenth: it must fail to load."""
    shutil.copytree(folder, destination)
    model = next(p for p in destination.iterdir() if p.suffix in (".onnx", ".tflite", ".xml"))
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 10])
    return destination
