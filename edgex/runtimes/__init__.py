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
    """An adapter for `path`; a typed edgex error (its own exit code) when it cannot load."""
    if runtime == "keras":  # the source model in-process, whatever its framework
        from edgex.runtimes.source import SourceSession

        return SourceSession(Path(path), precision, threads, device)
    from edgex.bench.runner import RunnerError, open_session

    try:
        return open_session(runtime, Path(path), precision, threads, device)
    except RunnerError as exc:  # the one-file runner cannot import edgex's errors: type them here
        raise typed_runner_error(exc) from exc


def typed_runner_error(exc):
    """The edgex error for a runner failure kind: a missing runtime is an install hint, the rest bad data."""
    from edgex.errors import DataError, MissingDependencyError, MissingInputError

    kind = {"missing_runtime": MissingDependencyError, "bad_input": MissingInputError}.get(exc.kind, DataError)
    return kind(f"{exc.kind.replace('_', ' ')}: {exc.message}", exc.hint)
