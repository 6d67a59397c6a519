"""The Pi path: a bundle's predict.py and the remote bench runner on an emulated Raspberry Pi 4 (qemu-user
`-cpu cortex-a72`, Debian's arm64 Python, aarch64 numpy/Pillow/ai-edge-litert wheels; see aarch64_device.py)
answer as on x86. Slow: every instruction is emulated (about 1 s for the imports alone).

Tolerance: both runs execute the same int8 graph; ARM and x86 XNNPACK kernels may requantize an output one int8
step apart (the `scale` of the output), and nothing more. A logit moved by at most `scale` moves every softmax
probability by at most scale/2 (|dp_i/dz_j| summed over j is 2 p_i (1 - p_i) <= 1/2), a probability output by
at most `scale`: so `scale` (+1e-6 for the CSV's six decimals) bounds both kinds. Top-1 is compared on images
whose x86 top-1 leads by at least 4 steps, twice what one step on each of two logits can undo.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aarch64_device import pi4_python
from helpers import CLASSES, run_edgex
from sshd_fixture import running_sshd
from test_bench_fixtures import tiny_int8_artifacts

pytestmark = pytest.mark.slow
IMAGES = 2  # per run: the emulation costs seconds per image on a busy 2-core machine


@pytest.fixture(scope="module")
def pi() -> Path:
    """First, so that a machine that cannot emulate the Pi skips before the server and the conversion."""
    return pi4_python()


@pytest.fixture(scope="module")
def tiny_tflite(tiny_model, images_dir, tmp_path_factory) -> Path:
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory) / "tflite-int8"


@pytest.fixture(scope="module")
def bundle(tiny_tflite, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle") / "app"
    done = run_edgex("bundle", tiny_tflite, "--output", folder)
    assert done.returncode == 0, done.stderr
    return folder


def _output(artifact: Path) -> tuple[str, float]:
    """The output's kind (logits, softmax, sigmoid) and its int8 step."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    return manifest.get("output_kind") or "logits", manifest["outputs"][0]["quantization"]["scale"]


def _predict(python: Path | str, bundle: Path, images: Path, csv_path: Path) -> dict[str, dict[str, float]]:
    """Run the bundle's predict.py (isolated: -I) with every class in top-k; {relative path: {label: probability}}."""
    done = subprocess.run([str(python), "-I", str(bundle / "predict.py"), ".", "--top-k", str(len(CLASSES)),
                           "--csv", str(csv_path)], cwd=images, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {row["path"]: {label: float(p) for label, p in (kv.split(":") for kv in row["top_k"].split("|"))}
            for row in rows}


def _lead_in_steps(probabilities: dict[str, float], kind: str, scale: float) -> float:
    """How many output steps the top-1 leads the runner-up by (in logits for a softmax over logits)."""
    first, second = sorted(probabilities.values(), reverse=True)[:2]
    if kind != "logits":
        return (first - second) / scale
    return math.inf if second == 0 else math.log(first / second) / scale


@pytest.fixture(scope="module")
def clear_images(bundle, tiny_tflite, images_dir, tmp_path_factory) -> Path:
    """IMAGES generated images of different classes whose x86 top-1 is their class and clear (module docstring)."""
    kind, scale = _output(tiny_tflite)
    folder = tmp_path_factory.mktemp("x86")
    x86 = _predict(sys.executable, bundle, images_dir, folder / "all.csv")
    ranked = sorted(x86, key=lambda path: -_lead_in_steps(x86[path], kind, scale))
    chosen, classes = [], set()
    for path in ranked:
        label, top1 = Path(path).parts[0], max(x86[path], key=x86[path].get)
        if label == top1 and label not in classes and _lead_in_steps(x86[path], kind, scale) >= 4:
            chosen.append(path)
            classes.add(label)
    assert len(chosen) >= IMAGES, f"fewer than {IMAGES} generated images with a clear, right top-1: {x86}"
    images = tmp_path_factory.mktemp("pi-images")
    for path in chosen[:IMAGES]:
        (images / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(images_dir / path, images / path)
    return images


def test_bundle_predict_py_on_an_emulated_pi4_answers_as_on_x86(pi, bundle, tiny_tflite, clear_images, tmp_path):
    _, scale = _output(tiny_tflite)
    on_pi = _predict(pi, bundle, clear_images, tmp_path / "pi.csv")
    on_x86 = _predict(sys.executable, bundle, clear_images, tmp_path / "x86.csv")
    assert sorted(on_pi) == sorted(on_x86) and len(on_pi) == IMAGES
    for path, expected in on_x86.items():
        assert max(on_pi[path], key=on_pi[path].get) == max(expected, key=expected.get), (path, on_pi, on_x86)
        assert on_pi[path].keys() == expected.keys()
        worst = max(abs(on_pi[path][label] - p) for label, p in expected.items())
        assert worst <= scale + 1e-6, (path, worst, scale)


def test_remote_bench_runner_on_an_emulated_pi4(pi, tiny_tflite, clear_images, tmp_path_factory, tmp_path):
    from edgex.bench.child import run_child
    from edgex.options import BenchSettings
    from edgex.remote.bench import RemoteDevice
    from edgex.remote.ssh import SshOptions
    from edgex.remote.target import RemoteTarget

    with running_sshd(tmp_path_factory.mktemp("sshd")) as sshd:
        done = run_edgex("bench", tiny_tflite, *sshd.ssh_args(), "--remote-python", pi, "--min-runs", "2",
                         "--min-seconds", "0", "--warmup", "0", "--eval-data", clear_images, "--no-source",
                         "--output", tmp_path / "pi", "-q")
        assert done.returncode == 0, done.stderr
        (row,) = json.loads((tmp_path / "pi" / "report.json").read_text())["results"]
        assert row["status"] == "ok" and row["runtime"]["package"] == "ai-edge-litert"
        assert row["device"]["machine"] == "aarch64" and row["device"]["remote"] == sshd.remote
        assert row["device"]["cpu_model"] == "BCM2835" and "neon" in row["device"]["isa"]  # the Pi's cpuinfo
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p90"] and row["runs"] >= 2
        assert row["accuracy"]["top1"] == 1.0  # as on x86, where each chosen image's top-1 is its class

        inputs = tmp_path / "in.npy"
        np.save(inputs, np.random.default_rng(0).uniform(-1, 1, (4, 96, 96, 3)).astype(np.float32))
        settings = BenchSettings(min_runs=1, min_seconds=0, warmup=0)
        options = SshOptions(identity=sshd.client_key, known_hosts=sshd.known_hosts)
        with RemoteDevice(RemoteTarget.parse(sshd.remote), options, python=str(pi)) as device:
            arm = device(tiny_tflite / "model.tflite", "litert", "int8", settings, inputs, tmp_path / "pi.npy")
        assert not any(sshd.device_tmp.iterdir())
    x86 = run_child(tiny_tflite / "model.tflite", "litert", "int8", settings, inputs, tmp_path / "x86.npy")
    assert arm["ok"] and x86["ok"], (arm, x86)
    _, scale = _output(tiny_tflite)
    assert np.abs(np.load(tmp_path / "pi.npy") - np.load(tmp_path / "x86.npy")).max() <= scale + 1e-6  # one step
