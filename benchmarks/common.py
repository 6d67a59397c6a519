"""Helpers shared by the benchmark scripts: where shared data lives, child-process timing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    return Path(os.environ.get("EDGEX_SHARED", REPO.parent / "shared")).resolve()


def build_clothing_model(build: Path) -> Path:
    """The clothing Xception from ../shared (built once, ~15 s)."""
    model = build / "clothing_xception.keras"
    if not model.is_file():
        shared = shared_dir()
        subprocess.run([sys.executable, str(shared / "tools" / "build_head_model.py"),
                        str(shared / "models" / "clothing_head.npz"), str(model)], check=True)
    return model


_PEAK_WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "sys.stderr.write('@@peak_kb=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(code)"
)


def run_measured(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (MB) of one command, measured through a wrapper with it as only child."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = [line for line in done.stderr.splitlines() if line.startswith("@@peak_kb=")]
    return wall, int(peak[-1].split("=")[1]) / 1024 if peak else float("nan"), done


def latency_in_blocks(runners: dict[str, object], sample, rounds: int = 6, block: int = 10,
                      warmup: int = 5) -> dict[str, list[float]]:
    """Batch-1 latencies (ms) of several runners, timed in blocks taken in turns.

    Blocks, not strict alternation: switching model every run thrashes the L3 cache; turns,
    not one model after another: drift of a noisy machine then hits all models alike; a pause before
    each turn, so the previous runtime's spinning idle threads do not take a core (TURN_PAUSE_S).
    """
    from edgex.bench.floor import TURN_PAUSE_S

    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        for _ in range(warmup):
            run(sample)
    for _ in range(rounds):
        for name, run in runners.items():
            time.sleep(TURN_PAUSE_S)
            run(sample)  # re-warm the cache after the previous model's block
            for _ in range(block):
                start = time.perf_counter()
                run(sample)
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def machine_line() -> str:
    """The machine every printed number belongs to: CPU model, edgex's ISA class and the int8 features behind it."""
    from edgex.isa import cpu_flags, isa_class

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    flags = sorted(cpu_flags() & {"avx2", "avx512_vnni", "avx_vnni", "amx_int8"})
    return f"machine: {cpu}, {isa_class()} ({', '.join(flags)})"
