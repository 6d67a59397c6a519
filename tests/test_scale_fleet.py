"""`edgex bench --remote-hosts hosts.yaml`: two loopback sshd "devices", one of which is stopped mid-run.

Each device is a real sshd on 127.0.0.1 (tests/sshd_fixture.py) with the bare device venv (numpy and
ai-edge-litert only); the tiny tflite-int8 artifact is timed on both in parallel.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from failure_checks import assert_clean_failure
from helpers import run_edgex
from sshd_fixture import device_python, running_sshd
from test_bench_fixtures import tiny_int8_artifacts
from test_remote import _processes_in, _sshd_ancestor, _wait_for_runner

TIMING = ("--min-runs", "3", "--min-seconds", "3", "--warmup", "1")


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory) -> Path:
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def device() -> Path:
    return device_python()


def _hosts_yaml(path: Path, servers: dict, device: Path) -> Path:
    lines = ["devices:"]
    for name, server in servers.items():
        lines += [f"  - name: {name}", f"    host: {server.remote}", f"    identity: {server.client_key}",
                  f"    known_hosts: {server.known_hosts}", f"    python: {device}", "    tags: [loopback, x86_64]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_device_stopped_mid_run_is_a_failed_row_and_the_other_completes(tiny_artifacts, device, tmp_path):
    with running_sshd(tmp_path / "a") as one, running_sshd(tmp_path / "b") as two:
        hosts = _hosts_yaml(tmp_path / "hosts.yaml", {"bench-a": one, "bench-b": two}, device)
        cmd = [sys.executable, "-m", "edgex", "bench", str(tiny_artifacts / "tflite-int8"), "--remote-hosts",
               str(hosts), *TIMING, "--output", str(tmp_path / "r"), "-q"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        try:
            runner_b = _wait_for_runner(two.device_tmp, seconds=60)
            os.killpg(two.process.pid, signal.SIGKILL)  # device b goes away: its sshd listener,
            os.kill(_sshd_ancestor(runner_b), signal.SIGKILL)  # and the connection of the run
            _, stderr = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
            for pid in _processes_in(two.device_tmp):  # b's orphaned runner (started by this test)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert runner_b
    assert proc.returncode == 4, stderr[-2000:]  # some rows failed; the report is still written
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    rows = {r["device_name"]: r for r in report["results"]}
    assert set(rows) == {"bench-a", "bench-b"}
    assert rows["bench-a"]["status"] == "ok" and rows["bench-a"]["runs"] >= 3
    assert rows["bench-a"]["name"] == "bench-a/tflite-int8" and rows["bench-a"]["device"]["remote"] == one.remote
    failed = rows["bench-b"]
    assert failed["status"] == "failed" and failed["kind"] == "remote" and "lost" in failed["error"]
    fleet = {d["name"]: d for d in report["fleet"]}
    assert fleet["bench-a"]["status"] == "ok" and fleet["bench-b"]["status"] == "failed"
    assert fleet["bench-a"]["tags"] == ["loopback", "x86_64"]
    table = (tmp_path / "r" / "report.md").read_text()
    assert "bench-a/tflite-int8 | ok" in table and "bench-b/tflite-int8 | FAILED (remote)" in table


@pytest.mark.parametrize(("text", "code", "needle"), [
    ("devices: []\n", 2, "lists no devices"),
    ("devices:\n  - name: a\n    host: 'not a host'\n", 2, "device 1 of"),
    ("devices:\n  - name: a\n    host: me@127.0.0.1\n    colour: red\n", 2, "unknown key(s) colour"),
    ("devices:\n  - name: a\n    host: me@127.0.0.1\n  - name: a\n    host: me@127.0.0.2\n", 2, "appears twice"),
    ("devices: [a, b\n", 65, "is not valid YAML"),
])
def test_bad_hosts_file_is_one_line_with_its_exit_code(tiny_artifacts, tmp_path, text, code, needle):
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(text)
    done = run_edgex("bench", tiny_artifacts / "tflite-int8", "--remote-hosts", hosts)
    assert_clean_failure(done, code, needle)


def test_missing_hosts_file_exits_66(tiny_artifacts, tmp_path):
    done = run_edgex("bench", tiny_artifacts / "tflite-int8", "--remote-hosts", tmp_path / "nope.yaml")
    assert_clean_failure(done, 66, "nope.yaml does not exist")


def test_help_with_the_scale_out_flags_imports_no_ray():
    code = ("import sys; from edgex.cli import build_parser; build_parser().format_help(); "
            "print([m for m in ('ray', 'yaml') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
