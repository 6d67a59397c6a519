"""Run `runner.py` for one artifact in a clean child process and read its one-line JSON answer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from edgex.options import BenchSettings

RUNNER = Path(__file__).with_name("runner.py")


def run_child(model_file: Path, runtime: str, precision: str | None, settings: BenchSettings,
              inputs: Path | None = None, outputs: Path | None = None) -> dict:
    """The runner's JSON result; a crash, hang or garbled answer becomes {"ok": false, "kind", "error"}."""
    cmd = [sys.executable, str(RUNNER), "run", "--artifact", str(model_file), "--runtime", runtime,
           *settings.runner_args()]
    if precision:
        cmd += ["--precision", precision]
    if inputs is not None and outputs is not None:
        cmd += ["--inputs", str(inputs), "--outputs", str(outputs)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=settings.timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "kind": "timeout", "error": f"no result within {settings.timeout_s:.0f} s",
                "hint": "Lower --min-runs/--min-seconds or raise the timeout."}
    return parse_answer(done.stdout, done.stderr, done.returncode)


def parse_answer(stdout: str, stderr: str, returncode: int) -> dict:
    """The JSON object on the last stdout line, or a description of how the runner died."""
    lines = stdout.strip().splitlines()
    if lines:
        try:
            answer = json.loads(lines[-1])
            if isinstance(answer, dict) and "ok" in answer:
                return answer
        except json.JSONDecodeError:
            pass
    how = f"exit code {returncode}"
    if returncode < 0:
        with_name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else "?"
        how = f"signal {with_name}"
    last = (stderr.strip().splitlines() or ["(no output)"])[-1][:300]
    return {"ok": False, "kind": "crashed", "error": f"runner died ({how}): {last}", "hint": None}
