"""A tiny model whose every output is NaN, built on purpose: the tiny Xception's fp32 artifacts with the final
Dense bias overwritten by NaN in the model file, and the manifest re-signed (sizes and sha256 updated), as anyone
who controls the folder can do. Shared by the NaN tests and the fuzz campaign's sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from helpers import TINY_WEIGHTS, build_once, record_run, run_edgex, run_shared_dir

NAN_TARGETS = ("onnx", "tflite")


def final_bias() -> np.ndarray:
    """The tiny model's final Dense bias (the last of its sorted weight arrays), float32."""
    with np.load(TINY_WEIGHTS) as stored:
        return stored[sorted(stored.files)[-1]].astype(np.float32)


def resign(folder: Path) -> None:
    """Update every file's size and sha256 in manifest.json: the folder passes verify_files again."""
    from edgex.artifacts.hashing import sha256_file

    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        path = folder / entry["name"]
        entry["bytes"], entry["sha256"] = path.stat().st_size, sha256_file(path)
    manifest_path.write_text(json.dumps(manifest, indent=2))


def poison_bias(folder: Path) -> None:
    """Overwrite the final bias in the artifact's weights with NaN (its float32 bytes occur once) and re-sign."""
    manifest = json.loads((folder / "manifest.json").read_text())
    bias = final_bias()
    needle = bias.tobytes()
    for entry in manifest["files"]:
        path = folder / entry["name"]
        data = path.read_bytes()
        if data.count(needle) == 1:
            path.write_bytes(data.replace(needle, np.full_like(bias, np.nan).tobytes()))
            resign(folder)
            return
    raise AssertionError(f"the final bias {bias} is not stored verbatim once in {folder}")


def tiny_fp32_artifacts(tiny_model: Path, tmp_path_factory) -> Path:
    """OUT/tiny_xception/{target}-fp32 (every target, in one conversion), converted once per session."""
    base = run_shared_dir(tmp_path_factory, "fp32-artifacts")

    def convert(_folder: Path) -> None:
        done = run_edgex("convert", "--model", tiny_model, "--target", "all", "--output", base, "--json", "-q")
        assert done.returncode == 0, done.stderr
        record_run(base, done)

    return build_once(base / "tiny_xception", convert)


def nan_artifacts(tiny_model: Path, tmp_path_factory, targets: tuple[str, ...] = NAN_TARGETS) -> Path:
    """OUT/nan_xception/{target}-fp32: the fp32 artifacts with a NaN final bias, re-signed."""
    healthy = tiny_fp32_artifacts(tiny_model, tmp_path_factory)
    base = run_shared_dir(tmp_path_factory, "nan-artifacts") / "nan_xception"
    for target in targets:
        def poison(folder: Path, target: str = target) -> None:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(healthy / f"{target}-fp32", folder)
            poison_bias(folder)

        build_once(base / f"{target}-fp32", poison)
    return base
