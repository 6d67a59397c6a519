"""Tiny int8 artifacts shared by the bench, eval, report and pipeline tests (built once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import build_once, record_run, run_edgex, run_shared_dir


def tiny_int8_artifacts(tiny_model: Path, images_dir: Path, tmp_path_factory) -> Path:
    """OUT/tiny_xception/{onnx,openvino,tflite}-int8 (tflite has int8 input and output: the quantized-io path).

    Each test module wraps this in its own `tiny_artifacts` fixture; the folder is shared, so the one
    conversion runs once per session, whatever the number of xdist workers."""
    base = run_shared_dir(tmp_path_factory, "bench-artifacts")

    def convert(_folder: Path) -> None:
        done = run_edgex("convert", "--model", tiny_model, "--target", "all", "--int8", "--calib-data", images_dir,
                         "--calib-size", "24", "--output", base, "--json", "-q")
        assert done.returncode == 0, done.stderr
        record_run(base, done)

    return build_once(base / "tiny_xception", convert)


def truncated_copy(folder: Path, destination: Path) -> Path:
    """A copy of an artifact whose model file is cut to a tenth: it must fail to load."""
    shutil.copytree(folder, destination)
    model = next(p for p in destination.iterdir() if p.suffix in (".onnx", ".tflite", ".xml"))
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 10])
    return destination
