"""Stretch: the same artifact on an aarch64 "device" (qemu-user, arm64 Python, aarch64 LiteRT wheel) gives the
same logits as on x86. Slow: every instruction is emulated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_edgex
from sshd_fixture import aarch64_device_python, running_sshd
from test_bench_fixtures import tiny_int8_artifacts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def arm_python() -> Path:
    """First, so that a machine without the arm64 packages skips before the server and the conversion."""
    return aarch64_device_python()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def tiny_tflite(tiny_model, images_dir, tmp_path_factory) -> Path:
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory) / "tflite-int8"


def test_aarch64_device_matches_x86(arm_python, sshd, tiny_tflite, images_dir, tmp_path):
    from edgex.bench.child import run_child
    from edgex.options import BenchSettings
    from edgex.remote.bench import RemoteDevice
    from edgex.remote.ssh import SshOptions
    from edgex.remote.target import RemoteTarget

    python = arm_python
    done = run_edgex("bench", tiny_tflite, *sshd.ssh_args(), "--remote-python", python, "--min-runs", "2",
                     "--min-seconds", "0", "--warmup", "0", "--eval-data", images_dir, "--no-source", "--output",
                     tmp_path / "arm", "-q")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads((tmp_path / "arm" / "report.json").read_text())["results"]
    assert row["device"]["machine"] == "aarch64" and row["runtime"]["package"] == "ai-edge-litert"
    assert row["latency_ms"]["p50"] > 0 and row["accuracy"]["top1"] is not None

    inputs = tmp_path / "in.npy"
    np.save(inputs, np.random.default_rng(0).uniform(-1, 1, (8, 96, 96, 3)).astype(np.float32))
    settings = BenchSettings(min_runs=1, min_seconds=0, warmup=0)
    options = SshOptions(identity=sshd.client_key, known_hosts=sshd.known_hosts)
    with RemoteDevice(RemoteTarget.parse(sshd.remote), options, python=str(python)) as device:
        arm = device(tiny_tflite / "model.tflite", "litert", "int8", settings, inputs, tmp_path / "arm.npy")
    x86 = run_child(tiny_tflite / "model.tflite", "litert", "int8", settings, inputs, tmp_path / "x86.npy")
    assert arm["ok"] and x86["ok"], (arm, x86)
    arm_logits, x86_logits = np.load(tmp_path / "arm.npy"), np.load(tmp_path / "x86.npy")
    scale = json.loads((tiny_tflite / "manifest.json").read_text())["outputs"][0]["quantization"]["scale"]
    assert np.abs(arm_logits - x86_logits).max() <= scale + 1e-6  # at most one int8 step apart
    assert (arm_logits.argmax(1) == x86_logits.argmax(1)).all()
    assert not any(sshd.device_tmp.iterdir())
