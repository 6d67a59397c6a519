"""Issue 15: without --threads, a remote run uses every core of the device (from its probe), not one thread
and not the host's count; report.json and report.md say how many each row ran with.

The loopback device is this machine; a device "python" pinned by taskset to one CPU stands in for a
device with fewer cores than the host.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import run_edgex
from sshd_fixture import device_python, running_sshd
from test_bench_fixtures import tiny_int8_artifacts
from test_remote import FAST, assert_device_clean


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def tflite(tiny_model, images_dir, tmp_path_factory) -> Path:
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory) / "tflite-int8"


@pytest.fixture(scope="module")
def one_core_device(tmp_path_factory) -> Path:
    """The device venv's Python, allowed one CPU: a smaller machine than the host."""
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs taskset and a host with at least 2 usable cores")
    wrapper = tmp_path_factory.mktemp("one-core") / "python"
    wrapper.write_text(f'#!/bin/sh\nexec taskset -c {min(os.sched_getaffinity(0))} {device_python()} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _markdown_threads(report_md: str, name: str) -> str:
    lines = [line for line in report_md.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(line for line in lines if line.startswith(f"| {name} "))
    return [c.strip() for c in row.strip("|").split("|")][header.index("threads")]


def _remote(sshd, python: Path, command: str, *args) -> tuple[dict, dict, str]:
    """Run `edgex COMMAND --remote ...`; its report.json, only row and report.md."""
    out = Path(sshd.folder) / f"report-{command}-{python.parent.name}"
    done = run_edgex(command, *args, *sshd.ssh_args(), "--remote-python", python, "--output", out, "-q")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    (row,) = report["results"]
    return report, row, (out / "report.md").read_text()


def test_remote_bench_without_threads_uses_every_core_of_the_device(sshd, tflite):
    report, row, text = _remote(sshd, device_python(), "bench", tflite, *FAST)
    cores = row["device"]["cores_usable"]  # the device's probe
    assert cores >= 1 and report["settings"]["threads"] is None
    assert row["threads"] == row["runtime"]["threads"] == cores
    assert _markdown_threads(text, "tflite-int8") == str(cores)
    assert f"threads all usable cores ({cores})" in text
    assert (row["batch"], row["warmup"], row["runs"]) == (1, 1, 3) and row["seconds"] > 0
    assert_device_clean(sshd)


def test_a_device_with_fewer_cores_than_the_host_gets_its_own_count(sshd, tflite, images_dir, one_core_device):
    _, row, text = _remote(sshd, one_core_device, "bench", tflite, *FAST)
    assert row["device"]["cores_usable"] == 1 < len(os.sched_getaffinity(0))
    assert row["threads"] == row["runtime"]["threads"] == 1
    assert _markdown_threads(text, "tflite-int8") == "1"
    # remote eval (accuracy only) opens the runtime the same way
    _, row, _ = _remote(sshd, one_core_device, "eval", tflite, "--eval-data", images_dir, "--no-source")
    assert row["threads"] == row["runtime"]["threads"] == 1 and row["accuracy"]["top1"] is not None
    assert_device_clean(sshd)
