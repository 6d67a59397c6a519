"""Local and remote p50 of one artifact at the same (default) settings, on the loopback SSH device (issue 15).

    .venv/bin/python benchmarks/remote_vs_local.py [--artifact DIR] [--rounds 3] [-- extra edgex bench flags]

The "device" is this machine reached over a throwaway sshd on 127.0.0.1, running a bare venv with
numpy and ai-edge-litert (tests/sshd_fixture.py), so both sides run the same runtime on the same cores:
the p50s must agree within noise, and each row must record the same thread count. Default artifact:
the embedded kitchenware Xception as tflite-int8 (converted once into build/kitchenware). `edgex bench`
runs exactly as a user types it, without --threads, local and remote in turns (ABBA order), so drift
on a shared machine hits both alike. Prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from sshd_fixture import device_python, running_sshd  # noqa: E402

EDGEX = [sys.executable, "-m", "edgex"]
KITCHENWARE = REPO / "build" / "kitchenware"


def default_artifact() -> Path:
    """The kitchenware tflite-int8 artifact, converted once."""
    found = sorted(KITCHENWARE.glob("*/tflite-int8"))
    if not found:
        subprocess.run([*EDGEX, "convert", "--target", "tflite", "--int8", "--output", str(KITCHENWARE), "-q"],
                       check=True)
        found = sorted(KITCHENWARE.glob("*/tflite-int8"))
    return found[0]


def bench(artifact: Path, extra: list[str]) -> dict:
    """One `edgex bench ARTIFACT --json ...`: the only result row, plus the report's machine."""
    done = subprocess.run([*EDGEX, "bench", str(artifact), "--json", "-q", *extra], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"edgex bench failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    report = json.loads(done.stdout)
    (row,) = report["results"]
    return {**row, "machine": report["machine"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifact", type=Path, help="artifact folder (default: kitchenware tflite-int8)")
    ap.add_argument("--rounds", type=int, default=3, help="local/remote pairs, in ABBA order (default 3)")
    ap.add_argument("extra", nargs="*", help="more `edgex bench` flags for both sides (after --)")
    args = ap.parse_args()
    artifact = args.artifact or default_artifact()
    python = device_python()
    p50: dict[str, list[float]] = {"local": [], "remote": []}
    threads: dict[str, set] = {"local": set(), "remote": set()}
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="edgex-rvl-") as tmp, running_sshd(Path(tmp) / "sshd") as sshd:
        sides = {"local": list(args.extra),
                 "remote": [*args.extra, *sshd.ssh_args(), "--remote-python", str(python)]}
        for number in range(args.rounds):
            order = ("local", "remote") if number % 2 == 0 else ("remote", "local")
            for side in order:
                row = rows[side] = bench(artifact, sides[side])
                p50[side].append(row["latency_ms"]["p50"])
                threads[side].add(row["threads"])
                print(f"round {number + 1} {side:>6}: p50 {p50[side][-1]:7.2f} ms, threads {row['threads']}, "
                      f"{row['runs']} runs in {row['seconds']:.1f} s (batch {row['batch']}, warm-up {row['warmup']})",
                      flush=True)
    local, remote = statistics.median(p50["local"]), statistics.median(p50["remote"])
    host, device = rows["local"]["machine"], rows["remote"]["device"]
    print(f"\nartifact: {artifact} ({rows['local']['runtime']['name']} {rows['local']['runtime']['version']})")
    print(f"host:   {host['cpu_model']}, {host['cores_usable']} usable cores ({host['cores_logical']} logical)")
    print(f"device: {device['remote']}, {device['cpu_model']}, {device['cores_usable']} usable cores (its probe)")
    print(f"threads recorded: local {sorted(threads['local'])}, remote {sorted(threads['remote'])}")
    print(f"p50 median of {args.rounds} rounds: local {local:.2f} ms, remote {remote:.2f} ms, "
          f"remote/local {remote / local:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
