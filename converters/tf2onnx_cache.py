"""The fp32 ONNX export of a Keras or SavedModel source, kept between runs.

tf2onnx is the slowest step of converting a Keras model to ONNX (two TensorFlow children), and teams
convert the same model again and again: fp32 then int8, another recipe, another calibration set. Its
result depends only on the source's bytes, the input shape edgex exports, the opset, edgex's export code
and the tools' versions, so an entry is keyed by all of them. An entry whose bytes no longer match the
hash stored beside it is dropped and exported again; the newest entries stay, `ONNX_EXPORT_CACHE_MB` in all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

from edgex.artifacts.hashing import sha256_file, sha256_path
from edgex.options import ONNX_EXPORT_CACHE_MB
from edgex.safety.first_open import cache_dir
from edgex.sources.load import Source
from edgex.versions import tool_versions

# edgex's own code that shapes the exported graph: a change to any of it is a new key.
_EXPORT_CODE = ("edgex.sources.load", "edgex.sources.keras2", "edgex.sources.keras2_file",
                "edgex.models.inference_graph", "edgex.converters.tf2onnx_export", "edgex.converters.onnx")


def export_key(source: Source, opset: int) -> str:
    """What the export depends on, hashed."""
    code = {name: sha256_file(Path(importlib.util.find_spec(name).origin)) for name in _EXPORT_CODE}
    parts = {"source": sha256_path(source.path), "framework": source.framework,
             "input_shape": list(source.preprocess.input_shape), "output_kind": source.output_kind,
             "removed": [r["name"] for r in source.removed_layers], "rebuilt": source.export_model is not None,
             "opset": opset, "code": code, "versions": tool_versions()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _folder() -> Path:
    return cache_dir() / "onnx-exports"


def has(key: str) -> bool:
    """Whether an export is stored under `key` (its bytes are checked when it is fetched)."""
    return (_folder() / f"{key}.onnx").is_file() and (_folder() / f"{key}.json").is_file()


def fetch(key: str, destination: Path) -> bool:
    """Copy the export stored under `key` to `destination` and check the copy's bytes against the stored
    hash (the copy, so another run replacing the entry meanwhile cannot slip a different file past the
    check). False when there is none or it does not match: the entry is dropped, `destination` removed."""
    model, record = _folder() / f"{key}.onnx", _folder() / f"{key}.json"
    try:
        expected = json.loads(record.read_text())["sha256"]
        shutil.copyfile(model, destination)
        if sha256_file(destination) == expected:
            os.utime(model)  # recently used: kept longest
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    destination.unlink(missing_ok=True)
    for path in (model, record):
        path.unlink(missing_ok=True)
    return False


def store(key: str, exported: Path) -> None:
    """Keep `exported` under `key` (atomically); an unwritable cache only costs the next run the export."""
    folder = _folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{key}.{os.getpid()}.tmp"
        shutil.copyfile(exported, partial)
        (folder / f"{key}.json").write_text(json.dumps({"sha256": sha256_file(partial)}))
        os.replace(partial, folder / f"{key}.onnx")
        kept = 0
        for entry in sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True):
            kept += entry.stat().st_size
            if kept > ONNX_EXPORT_CACHE_MB * 2**20 and entry.stem != key:
                entry.unlink(missing_ok=True)
                entry.with_suffix(".json").unlink(missing_ok=True)
    except OSError:
        for leftover in folder.glob(f".{key}.{os.getpid()}.tmp"):
            leftover.unlink(missing_ok=True)
