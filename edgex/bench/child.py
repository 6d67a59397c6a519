"""Run `runner.py` for one artifact in a clean child process and read its one-line JSON answer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

RUNNER = Path(__file__).with_name("runner.py")


@dataclass
class BenchSettings:
    """How to time: runs continue until both min_runs and min_seconds are reached, after `warmup` runs.

    These are edgex's defaults (the commands read them from here). `threads` None is not resolved on the
    host: the runner picks every usable core of the machine that runs the artifact (a device's own, with
    --remote). runner.py repeats the others as its own command-line defaults, since it runs alone on devices.
    """

    threads: int | None = None
    min_runs: int = 50
    min_seconds: float = 10.0
    warmup: int = 5
    batch: int = 1
    device: str = "cpu"
    timeout_s: float = 1800.0
    latency: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def runner_args(self) -> list[str]:
        if self.latency:
            timing = ["--min-runs", self.min_runs, "--min-seconds", self.min_seconds, "--warmup", self.warmup]
        else:  # accuracy only: one timed run is enough to fill the protocol's fields
            timing = ["--min-runs", 1, "--min-seconds", 0, "--warmup", 0]
        threads = ["--threads", self.threads] if self.threads else []
        return [str(a) for a in [*timing, *threads, "--batch", self.batch, "--device", self.device]]


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
