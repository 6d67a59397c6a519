"""Runtime adapters, the one door to them: load an artifact in the runtime that will really run it.

Every adapter satisfies `Runtime`: `.info` (what ran: runtime, version, precision that really ran,
providers or device), `.input_shape(batch)`, `.run(batch) -> float32 logits`. Quantized inputs and
outputs are converted inside, so callers always speak preprocessed float32.

The artifact runtimes live in `edgex/bench/runner.py`, the self-contained file that also times
artifacts on edge devices. Only this package and `edgex.bench` import it; everyone else (parity,
evaluation, doctor, gpu, reports, remote, converters) comes through the functions here, which also turn
its untyped `RunnerError` into edgex's typed errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

RUNTIMES = ("onnxruntime", "openvino", "litert", "keras")


@runtime_checkable
class Runtime(Protocol):
    """What every adapter offers, whether it runs an artifact or the source model in-process."""

    info: dict

    def input_shape(self, batch: int) -> tuple[int, ...]: ...

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def open_runtime(runtime: str, path: Path, precision: str | None = None, threads: int | None = None,
                 device: str = "cpu") -> Runtime:
    """An adapter for `path`; a typed edgex error (its own exit code) when it cannot load.

    "keras" is the source model in-process, whatever its framework (edgex.runtimes.source).
    """
    if runtime == "keras":
        from edgex.runtimes.source import SourceSession

        return SourceSession(Path(path), precision, threads, device)
    from edgex.bench.runner import RunnerError, open_session

    try:
        return open_session(runtime, Path(path), precision, threads, device)
    except RunnerError as exc:  # the one-file runner cannot import edgex's errors: type them here
        raise typed_runner_error(exc) from exc


def failure_row(exc: Exception) -> dict:
    """A load failure as the runner's protocol dict (ok, kind, error, hint): what workers that report
    failures as rows (Ray actors, like remote devices) send back instead of raising."""
    if hasattr(exc.__cause__, "to_dict"):  # open_runtime keeps the runner's error as the cause
        return exc.__cause__.to_dict()
    return {"ok": False, "kind": "load_failed", "error": str(exc), "hint": getattr(exc, "hint", None)}


def predict(session: Runtime, inputs: np.ndarray, batch: int = 1) -> np.ndarray:
    """Logits for every input, `batch` at a time (the runner's loop, so eval and workers agree)."""
    from edgex.bench.runner import predict as runner_predict

    return runner_predict(session, inputs, batch)


def usable_cores() -> int:
    """The CPUs this process may run on: every runtime's default thread count."""
    from edgex.bench.runner import usable_cores as runner_usable_cores

    return runner_usable_cores()


def typed_runner_error(exc):
    """The edgex error for a runner failure kind: a missing runtime is an install hint, the rest bad data."""
    from edgex.errors import DataError, MissingDependencyError, MissingInputError

    kind = {"missing_runtime": MissingDependencyError, "bad_input": MissingInputError}.get(exc.kind, DataError)
    return kind(f"{exc.kind.replace('_', ' ')}: {exc.message}", exc.hint)


def probe(runtimes: bool = True) -> dict:
    """This machine as the runner describes every machine: CPU, ISA flags, cores, OS, runtimes."""
    from edgex.bench.runner import probe as runner_probe

    return runner_probe(runtimes)


def probe_runtimes() -> dict:
    """Each runtime's availability, version and providers on this machine."""
    from edgex.bench.runner import probe_runtimes as runner_probe_runtimes

    return runner_probe_runtimes()


def install_hint(runtime: str) -> str | None:
    """How to install a runtime on a device (pip line), or None when unknown."""
    from edgex.bench.runner import INSTALL_HINTS

    return INSTALL_HINTS.get(runtime)


def litert_interpreter():
    """(Interpreter class, package name) of the LiteRT installed here: ai-edge-litert or tflite-runtime."""
    from edgex.bench.runner import litert_interpreter as runner_litert_interpreter

    return runner_litert_interpreter()
