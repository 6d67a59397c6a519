"""The first run of an artifact file happens in a child process, so a native crash cannot kill edgex.

`predict` and `edgex.load` hand an artifact's model file to ONNX Runtime, OpenVINO or LiteRT in this
process. A damaged or crafted file can crash such a runtime's parser natively (a segfault on a bad
flatbuffer offset or protobuf field); no Python code survives that. So the first time a file is seen,
a child opens it with the same adapter and runs one all-zero batch: a signal or a hang there is exit 65
naming the file. A Python-level failure in the child is not judged there: the parent then meets the same
error itself and reports it with its own typed message. A file that opened and ran once is remembered
by its sha256, the runtime and the runtime's version (a marker file under the cache folder), so later
runs of the same bytes start at once. `bench` needs none of this: its runner is already a child.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from edgex.errors import DataError
from edgex.safety.probe import run_child, signal_name

PROBE_TIMEOUT_S = 300
CACHE_ENV = "EDGEX_CACHE_DIR"
_RUNTIME_DISTRIBUTIONS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "openvino": ("openvino",),
                          "litert": ("ai-edge-litert", "tflite-runtime")}


def cache_dir() -> Path:
    """Where edgex remembers what it has checked: $EDGEX_CACHE_DIR, else $XDG_CACHE_HOME/edgex or ~/.cache/edgex."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgex"


def first_open_in_child(runtime: str, model_file: Path, precision: str | None, sha256: str | None) -> None:
    """Open and run `model_file` once in a child unless these bytes already ran with this runtime version.

    Without a sha256 (an artifact whose manifest lists none) the child runs every time."""
    marker = _marker(runtime, sha256)
    if marker is not None and marker.exists():
        return
    argv = [sys.executable, "-m", "edgex.safety.first_open", runtime, str(model_file), precision or ""]
    try:
        done = run_child(argv, PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise DataError(f"opening {model_file} in {runtime} did not finish in {PROBE_TIMEOUT_S} s",
                        "The file may be damaged or crafted to hang the runtime; rebuild it with edgex convert.",
                        ) from exc
    if done.returncode < 0:
        crash = signal_name(done.returncode)
        raise DataError(f"{model_file} crashed {runtime} while loading or running it ({crash})",
                        "The file is damaged or crafted; rebuild it with edgex convert or copy it again.")
    if done.returncode == 0 and marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:  # an unwritable cache only costs the next run another child
            pass


def files_digest(manifest: dict) -> str | None:
    """One digest of every file a verified manifest lists (an IR is its .xml and .bin), or None when one
    has no sha256 (then nothing vouches for the bytes between runs)."""
    import hashlib

    digests = [entry.get("sha256") for entry in manifest.get("files", [])]
    if not digests or not all(digests):
        return None
    return hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()


def _marker(runtime: str, sha256: str | None) -> Path | None:
    if not sha256:
        return None
    versions = []
    for name in _RUNTIME_DISTRIBUTIONS.get(runtime, (runtime,)):
        try:
            versions.append(f"{name}-{metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return cache_dir() / "opened" / f"{runtime}-{'_'.join(versions) or 'unknown'}-{sha256}"


def _child(runtime: str, path: str, precision: str) -> int:
    """Open and run one zero batch; exit 0 whatever Python-level error happens (the parent meets it too)."""
    try:
        import numpy as np

        from edgex.runtimes import open_runtime

        session = open_runtime(runtime, Path(path), precision or None, 1, "cpu")
        session.run(np.zeros(session.input_shape(1), np.float32))
    except Exception as exc:  # judged by the parent, which raises its own typed error for it
        print(f"first-open: {type(exc).__name__}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:4]))
