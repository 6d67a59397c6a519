"""Faults during real runs: interrupts while saving, a concurrent run, a stale lock, a full disk.

One shared conversion of the tiny model (session fixture) proves a stale lock and stale staging
folder are taken over and bad images are skipped and counted; the interrupt and disk-full cases
each run their own conversion, because the fault must hit a run in flight.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from failure_checks import assert_clean_failure
from helpers import run_edgex

from edgex.artifacts.lock import LOCK_NAME


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="session")
def converted(tiny_model, images_dir, tmp_path_factory):
    """A finished tiny onnx-fp32 conversion into a folder that held a dead run's lock and staging folder."""
    root = tmp_path_factory.mktemp("converted")
    out, calib = root / "out", root / "calib"
    shutil.copytree(images_dir, calib)
    (calib / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF truncated")
    dead = _dead_pid()
    stale_staging = out / "tiny_xception" / f".edgex-staging-{dead}-onnx-fp32-deadbeef"
    stale_staging.mkdir(parents=True)
    (stale_staging / "model.onnx").write_bytes(b"half")
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": "earlier"}))
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--calib-data", calib, "--skip-bad-images",
                     "--output", out, "--json")
    return done, out, stale_staging


def test_stale_lock_and_staging_of_a_dead_run_are_taken_over(converted):
    done, out, stale_staging = converted
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "tiny_xception" / "onnx-fp32" / "manifest.json").is_file()
    assert not (out / LOCK_NAME).exists()
    assert not stale_staging.exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".edgex-staging-") or p.suffix == ".tmp"]


def test_skipped_bad_images_are_counted_in_summary_and_manifest(converted):
    done, out, _ = converted
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = json.loads(done.stdout)["results"]
    assert result["skipped_bad_images"] == 1
    assert "skipped 1 unreadable image" in done.stderr and "zz_broken.jpg" in done.stderr
    manifest = json.loads((out / "tiny_xception" / "onnx-fp32" / "manifest.json").read_text())
    (skipped,) = manifest["parity"]["inputs"]["skipped_bad_images"]
    assert skipped["file"].endswith("zz_broken.jpg") and "cannot decode" in skipped["reason"]


def test_converted_artifact_passes_edgex_check(converted):
    _, out, _ = converted
    done = run_edgex("check", out / "tiny_xception" / "onnx-fp32")
    assert done.returncode == 0, done.stderr
    assert "files verified" in done.stdout


def test_tampered_artifact_fails_edgex_check_with_65(converted, tmp_path):
    _, out, _ = converted
    copy = tmp_path / "onnx-fp32"
    shutil.copytree(out / "tiny_xception" / "onnx-fp32", copy)
    model = copy / "model.onnx"
    model.write_bytes(model.read_bytes()[:-100])
    done = run_edgex("check", copy)
    assert_clean_failure(done, 65, "model.onnx", "truncated or modified")


def _start_paused_at_publish(tiny_model: Path, out: Path, marker: Path) -> subprocess.Popen:
    """A convert run that will stop (test-only hook) when its staging folder holds the model but no manifest."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", EDGEX_TEST_PAUSE_AT="publish", EDGEX_TEST_PAUSE_FILE=str(marker))
    return subprocess.Popen([sys.executable, "-m", "edgex", "convert", "--model", str(tiny_model), "--target", "onnx",
                             "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_until_paused(proc: subprocess.Popen, out: Path, marker: Path) -> None:
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"convert never reached publish: {proc.communicate()[1][-3000:]}")
        time.sleep(0.2)
    staging = [p for p in (out / "tiny_xception").iterdir() if p.name.startswith(".edgex-staging-")]
    assert len(staging) == 1 and (staging[0] / "model.onnx").is_file()  # really mid-save
    assert not (staging[0] / "manifest.json").exists()


@pytest.fixture(scope="module")
def paused_runs(tiny_model, tmp_path_factory):
    """Two conversions started side by side (to halve the wait), each paused in the middle of saving."""
    runs = {}
    for name in ("sigint", "sigterm"):
        out, marker = (root := tmp_path_factory.mktemp(name)) / "out", root / "paused"
        runs[name] = (_start_paused_at_publish(tiny_model, out, marker), out, marker)
    yield runs
    for proc, _, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sigint_during_save_exits_130_and_leaves_nothing(paused_runs):
    proc, out, marker = paused_runs["sigint"]
    _wait_until_paused(proc, out, marker)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert_clean_failure(done, 130, "interrupted", output=out)
    assert not (out / "tiny_xception" / "onnx-fp32").exists()


def test_concurrent_run_gets_73_and_sigterm_exits_143_leaving_nothing(paused_runs, tiny_model):
    proc, out, marker = paused_runs["sigterm"]
    _wait_until_paused(proc, out, marker)
    try:
        second = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--output", out)
        assert_clean_failure(second, 73, "in use by another edgex run", f"pid {proc.pid}", socket.gethostname())
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert_clean_failure(done, 143, "terminated by SIGTERM", output=out)
    assert not (out / "tiny_xception" / "onnx-fp32").exists()


@pytest.fixture()
def tiny_tmpfs(tmp_path):
    """A 4 MB tmpfs filled up to its last 64 kB (needs root and mount; skipped where that is not allowed)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount; test_reliability_units covers disk full by simulation")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); covered by simulation instead")
    try:
        filler = mount_point / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        os.truncate(filler, max(filler.stat().st_size - 65536, 0))
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_is_74_and_leaves_no_truncated_file(tiny_model, tiny_tmpfs):
    out = tiny_tmpfs / "out"
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--output", out)
    assert_clean_failure(done, 74, "disk full", output=out)
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]  # no output folder, lock or partial model


def test_unwritable_output_path_is_73(tmp_path):
    (tmp_path / "a_file").write_text("in the way")
    done = run_edgex("convert", "--model", tmp_path / "m.keras", "--target", "onnx", "--output",
                     tmp_path / "a_file" / "out")
    assert_clean_failure(done, 73, "a_file", "--output")
    assert (tmp_path / "a_file").read_text() == "in the way"


def test_unknown_target_is_2_with_a_suggestion(tmp_path):
    done = run_edgex("convert", "--model", tmp_path / "m.keras", "--target", "openvno", "--output", tmp_path / "out")
    assert_clean_failure(done, 2, "openvno", "Did you mean 'openvino'", output=tmp_path / "out")


def test_unknown_config_key_is_2_with_a_suggestion(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("model: m.keras\ntargets: [onnx]\ncalibraton: {data: images}\n")
    done = run_edgex("run", config, "--dry-run")
    assert_clean_failure(done, 2, "calibraton", "calibration")
