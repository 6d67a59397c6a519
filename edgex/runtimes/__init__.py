"""Runtime adapters: load an artifact in the runtime that will really run it, feed it float batches.

Every adapter has the same small interface: `.info` (what ran: runtime, version, precision that
really ran, providers or device), `.input_shape(batch)`, `.run(batch) -> float32 logits`. Quantized
inputs and outputs are converted inside, so callers always speak preprocessed float32.

The artifact runtimes live in `edgex/bench/runner.py`, the self-contained file that also times
artifacts on edge devices; in-process users (parity checks, evaluation) share that one code.
"""

from __future__ import annotations

from pathlib import Path

RUNTIMES = ("onnxruntime", "openvino", "litert", "keras")


def open_runtime(runtime: str, path: Path, precision: str | None = None, threads: int | None = None,
                 device: str = "cpu"):
    """An adapter for `path`; raises edgex.bench.runner.RunnerError (kind=...) when it cannot load."""
    if runtime == "keras":
        from edgex.runtimes.keras import KerasSession

        return KerasSession(Path(path), precision, threads, device)
    from edgex.bench.runner import open_session

    return open_session(runtime, Path(path), precision, threads, device)
