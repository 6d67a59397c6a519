"""What every failing run must satisfy: its exit code, one `edgex: error:` line, no traceback, no debris."""

from __future__ import annotations

from pathlib import Path

STAGING_PREFIX = ".edgex-staging-"
MODEL_SUFFIXES = {".onnx", ".tflite", ".xml", ".bin", ".keras", ".h5", ".json"}


def debris(output: Path) -> list[Path]:
    """Anything a failed run might leave in its output folder: models, manifests, staging, locks, temp files."""
    output = Path(output)
    if not output.exists():
        return []
    return [p for p in output.rglob("*") if p.is_file() or p.name.startswith(STAGING_PREFIX)]


def assert_clean_failure(done, code: int, *needles: str, output: Path | None = None,
                         sentinel: Path | None = None) -> str:
    """Exit `code`, exactly one `edgex: error:` line (the last) holding every needle, nothing left behind."""
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("edgex: error:")]
    assert done.returncode == code, f"exit {done.returncode}, wanted {code}\n{done.stderr[-3000:]}"
    assert len(errors) == 1, done.stderr[-3000:]
    assert lines[-1] == errors[0], done.stderr[-3000:]  # status lines may precede it, nothing follows
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    if output is not None:
        assert debris(output) == [], debris(output)
    if sentinel is not None:
        assert not sentinel.exists(), f"the model's code ran: {sentinel} was created"
    return errors[0]
