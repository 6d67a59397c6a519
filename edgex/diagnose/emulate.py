"""Run the fused-vs-unfused ONNX comparison on an emulated x86 CPU (qemu-user), as users of that CPU run it.

ORT chooses its int8 kernels from the CPU's features at run time, so a VNNI machine cannot show what an
AVX2-only one computes. `qemu-x86_64 -cpu Haswell` runs the same Python with AVX2 and no VNNI. Only the
ORT part runs emulated (`python -m edgex.diagnose.fused`: numpy, onnx, onnxruntime), not TensorFlow.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgex.errors import EdgexError, MissingDependencyError, UsageError

QEMU = "qemu-x86_64"
TIMEOUT_S = 3600.0


def check_emulation(cpu: str) -> str:
    """The qemu binary for `cpu`; a usage error when this machine cannot emulate it."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise UsageError(f"--emulate-cpu {cpu} needs an x86-64 machine (this is {platform.machine()})")
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise MissingDependencyError(f"--emulate-cpu needs qemu-user ({QEMU} is not on PATH)",
                                     "apt-get install qemu-user (or your system's qemu-user package).")
    models = cpu_models(qemu)
    if models and cpu not in models:
        import difflib

        close = difflib.get_close_matches(cpu, models, n=1)
        raise UsageError(f"qemu has no CPU model {cpu!r}", (f"Did you mean {close[0]!r}? " if close else "")
                         + f"List them with: {QEMU} -cpu help")
    return qemu


def cpu_models(qemu: str) -> list[str]:
    """The CPU models `qemu -cpu help` lists ([] when it lists none we can read)."""
    try:
        listing = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split()[1] for line in listing.splitlines() if line.startswith("x86 ") and len(line.split()) > 1]


def fused_emulated(model_path: Path, samples: list[np.ndarray], cpu: str, timeout_s: float = TIMEOUT_S) -> dict:
    """edgex.diagnose.fused.compare's answer, computed under `qemu-x86_64 -cpu <cpu>`."""
    qemu = check_emulation(cpu)
    import edgex

    package_root = str(Path(edgex.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="edgex-emulate-") as tmp:
        inputs, out = Path(tmp) / "inputs.npy", Path(tmp) / "fused.json"
        np.save(inputs, np.concatenate(samples))
        command = [qemu, "-cpu", cpu, sys.executable, "-m", "edgex.diagnose.fused", str(model_path), str(inputs),
                   str(out)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired as exc:
            raise EdgexError(f"the emulated ({cpu}) ONNX Runtime run took over {timeout_s:.0f} s",
                             "Diagnose on fewer images (--samples).") from exc
        if done.returncode != 0 or not out.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip() and "TCG doesn't support" not in line]
            last = lines[-1] if lines else f"exit status {done.returncode}"
            if "unable to find cpu model" in done.stderr.lower():
                raise UsageError(f"qemu has no CPU model {cpu!r}", f"List them with: {QEMU} -cpu help")
            raise EdgexError(f"the emulated ({cpu}) ONNX Runtime run failed: {last}")
        result = json.loads(out.read_text())
    result["emulated_cpu"] = cpu
    return result
