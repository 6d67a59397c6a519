"""`edgex bench --remote` and `edgex doctor --remote` against a real sshd on 127.0.0.1 and a bare device venv.

The device is a venv with only numpy and ai-edge-litert; its $TMPDIR is a folder of the test (set by
sshd from authorized_keys), so "nothing of edgex remains on the device" is checked exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from failure_checks import assert_clean_failure
from helpers import run_edgex
from sshd_fixture import device_python, running_sshd
from test_bench_fixtures import tiny_int8_artifacts

FAST = ("--min-runs", "3", "--min-seconds", "0", "--warmup", "1")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def device() -> Path:
    return device_python()


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory) -> Path:
    """OUT/tiny_xception/{onnx,tflite}-int8, converted once per session (shared with the bench tests)."""
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is inside `folder` (the runner runs in the device folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(Path(os.readlink(entry / "cwd"))).startswith(str(folder)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def assert_device_clean(sshd, seconds: float = 15) -> None:
    """Nothing of edgex is left on the device: no folder in its $TMPDIR, no process working there."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not any(sshd.device_tmp.iterdir()) and not _processes_in(sshd.device_tmp):
            return
        time.sleep(0.2)
    raise AssertionError(f"left on the device: {list(sshd.device_tmp.rglob('*'))}, "
                         f"processes {_processes_in(sshd.device_tmp)}")


def bench_remote(sshd, device, *args, key=None):
    return run_edgex("bench", *args, *sshd.ssh_args(key=key), "--remote-python", device, *FAST, "-q")


def test_remote_bench_writes_report_with_device_section(sshd, device, tiny_artifacts, images_dir, tmp_path):
    tflite = tiny_artifacts / "tflite-int8"
    remote = bench_remote(sshd, device, tflite, "--eval-data", images_dir, "--no-source", "--output", tmp_path / "r")
    assert remote.returncode == 0, remote.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    (row,) = report["results"]
    assert row["status"] == "ok" and row["precision"] == "int8" and row["runtime"]["runtime"] == "litert"
    assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p90"]
    assert row["device"]["remote"] == sshd.remote and row["device"]["python_path"] == str(device)
    assert row["device"]["runtimes"]["litert"]["available"] is True
    assert row["device"]["runtimes"]["onnxruntime"]["available"] is False  # it really is a bare device
    assert row["device"]["cpu_model"] and row["device"]["isa"] is not None
    assert report["settings"]["remote"] == sshd.remote
    assert f"device {sshd.remote}:" in (tmp_path / "r" / "report.md").read_text()  # where the numbers were taken
    assert_device_clean(sshd)
    # accuracy on the device comes from logits brought back: the same as running the same runtime here
    local = run_edgex("bench", tflite, "--eval-data", images_dir, "--no-source", "--output", tmp_path / "l", *FAST,
                      "-q")
    assert local.returncode == 0, local.stderr
    (here,) = json.loads((tmp_path / "l" / "report.json").read_text())["results"]
    assert row["accuracy"]["top1"] == here["accuracy"]["top1"]
    assert "device" not in here
    # the same command times the same way here and there (the loopback device is this machine)
    timing = ("threads", "batch", "warmup", "runs")
    assert {k: row[k] for k in timing} == {k: here[k] for k in timing} and row["threads"] >= 1
    assert row["runtime"] == here["runtime"]  # same package, delegate, precision and threads


def test_artifact_whose_runtime_is_missing_on_the_device_is_reported(sshd, device, tiny_artifacts, tmp_path):
    done = bench_remote(sshd, device, tiny_artifacts, "--output", tmp_path)
    assert done.returncode == 4, done.stderr  # some artifacts failed; the others were measured
    rows = {r["name"]: r for r in json.loads((tmp_path / "report.json").read_text())["results"]}
    assert rows["tflite-int8"]["status"] == "ok"
    onnx = rows["onnx-int8"]
    assert onnx["status"] == "failed" and onnx["kind"] == "missing_runtime"
    assert "onnxruntime is not installed on" in onnx["error"] and "pip install onnxruntime" in onnx["hint"]
    assert onnx["device"]["remote"] == sshd.remote
    assert "Traceback" not in done.stderr
    assert_device_clean(sshd)


def test_gpu_requested_on_a_device_without_one(sshd, device, tiny_artifacts, tmp_path):
    done = bench_remote(sshd, device, tiny_artifacts / "tflite-int8", "--device", "gpu", "--output", tmp_path)
    assert done.returncode == 4, done.stderr
    (row,) = json.loads((tmp_path / "report.json").read_text())["results"]
    assert row["status"] == "failed" and row["kind"] == "missing_runtime" and "CPU only" in row["error"]
    assert_device_clean(sshd)


def test_unreachable_host_exits_75(sshd, device, tiny_artifacts):
    from sshd_fixture import _free_port

    done = run_edgex("bench", tiny_artifacts / "tflite-int8", "--remote", f"root@127.0.0.1:{_free_port()}",
                     "--identity", sshd.client_key, "--known-hosts", sshd.known_hosts, "--remote-python", device)
    assert_clean_failure(done, 75, "unreachable", "Connection refused")


def test_wrong_key_exits_77(sshd, device, tiny_artifacts):
    done = bench_remote(sshd, device, tiny_artifacts / "tflite-int8", key=sshd.other_key)
    assert_clean_failure(done, 77, "refused the key", str(sshd.other_key), "--identity")
    assert_device_clean(sshd)


def test_unknown_host_key_is_refused_until_accepted(sshd, device, tmp_path):
    known = tmp_path / "known_hosts"
    args = ["--remote", sshd.remote, "--identity", sshd.client_key, "--known-hosts", known, "--remote-python", device]
    done = run_edgex("doctor", *args)
    assert_clean_failure(done, 77, "host key", "--accept-new-host")
    accepted = run_edgex("doctor", *args, "--accept-new-host", "--json")
    assert accepted.returncode == 0, accepted.stderr
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(known)], capture_output=True)
    assert found.returncode == 0, known.read_text()  # recorded (Debian hashes known_hosts names)
    assert run_edgex("doctor", *args).returncode == 0  # recorded: strict checking passes from now on


def test_remote_doctor_describes_the_device(sshd, device):
    done = run_edgex("doctor", *sshd.ssh_args(), "--remote-python", device, "--json")
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)
    assert findings["where"] == sshd.remote
    runtimes = findings["machine"]["runtimes"]
    assert runtimes["litert"]["available"] and not runtimes["onnxruntime"]["available"]
    gpu = {row["backend"]: row for row in findings["gpu"]}
    assert not gpu["CUDAExecutionProvider"]["available"]
    assert "onnxruntime is not installed" in gpu["CUDAExecutionProvider"]["reason"]
    assert findings["int8"]["why"]
    assert_device_clean(sshd)


def test_missing_remote_python_is_a_usage_error(sshd):
    done = run_edgex("doctor", *sshd.ssh_args(), "--remote-python", "/nonexistent/bin/python")
    assert_clean_failure(done, 2, "/nonexistent/bin/python not found", "--remote-python")
    assert_device_clean(sshd)


def test_dropped_connection_exits_75_and_stops_the_runner(sshd, device, tiny_artifacts):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "edgex", "bench", str(tiny_artifacts / "tflite-int8"), *map(str, sshd.ssh_args()),
           "--remote-python", str(device), "--min-runs", "1", "--min-seconds", "120", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        runner = _wait_for_runner(sshd.device_tmp, seconds=60)
        session = _sshd_ancestor(runner)
        os.kill(session, signal.SIGKILL)  # the device's side of the connection dies mid-run
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(cmd, proc.returncode, "", stderr)
    assert_clean_failure(done, 75, "lost during benchmarking")
    assert_device_clean(sshd)


def _wait_for_runner(folder: Path, seconds: float) -> int:
    return _wait_for_process(folder, b"runner.py\0run", seconds)


def _sshd_ancestor(pid: int) -> int:
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        name, ppid = stat[stat.index("(") + 1 : stat.rindex(")")], int(stat[stat.rindex(")") + 2 :].split()[1])
        if name == "sshd":
            return pid
        pid = ppid
    raise AssertionError("no sshd above the runner")


def test_truncated_copy_exits_74(sshd, device, tiny_artifacts, monkeypatch, capfd):
    """The copy arrives short (as when a link drops bytes): the device's checksum check catches it."""
    from edgex.cli import main
    from edgex.remote.workspace import RemoteWorkspace

    upload = RemoteWorkspace.upload

    def truncating_upload(self, local: Path, name: str) -> None:
        if "/" not in name:  # the runner: intact
            return upload(self, local, name)
        short = Path(sshd.folder) / f"short-{Path(local).name}"
        short.write_bytes(Path(local).read_bytes()[:-100])
        try:
            upload(self, short, name)
        finally:
            short.unlink()

    monkeypatch.setattr(RemoteWorkspace, "upload", truncating_upload)
    code = main(["bench", str(tiny_artifacts / "tflite-int8"), *map(str, sshd.ssh_args()), "--remote-python",
                 str(device), *FAST, "-q"])
    err = capfd.readouterr().err
    done = subprocess.CompletedProcess([], code, "", err)
    assert_clean_failure(done, 74, "model.tflite arrived corrupted", "retry")
    assert_device_clean(sshd)


def test_checksums_are_verified_against_the_manifest(tiny_artifacts):
    from edgex.remote.bench import artifact_files, sha256_of

    folder = tiny_artifacts / "tflite-int8"
    files = artifact_files(folder / "model.tflite")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(files) == {f["name"] for f in manifest["files"]}
    assert all(sha256_of(files[f["name"]]) == f["sha256"] for f in manifest["files"])


@pytest.mark.parametrize("spec, destination, port", [
    ("pi@raspberrypi.local", "pi@raspberrypi.local", None),
    ("root@127.0.0.1:2222", "root@127.0.0.1", 2222),
    ("u@[fe80::1]:22", "u@fe80::1", 22),
    ("box", "box", None),
])
def test_remote_spec_parses(spec, destination, port):
    from edgex.remote.target import RemoteTarget

    target = RemoteTarget.parse(spec)
    assert (target.destination, target.port, str(target)) == (destination, port, spec)


@pytest.mark.parametrize("spec", ["-oProxyCommand=x", "a@-oProxyCommand=x", "a@b:99999", "a@b:port", "a b@c", ""])
def test_bad_remote_spec_is_a_usage_error(spec):
    from edgex.errors import UsageError
    from edgex.remote.target import RemoteTarget

    with pytest.raises(UsageError):
        RemoteTarget.parse(spec)


def test_ssh_flags_without_remote_are_refused(tmp_path):
    done = run_edgex("doctor", "--identity", tmp_path / "key")
    assert_clean_failure(done, 2, "--identity needs --remote")


def test_ssh_command_is_strict_by_default():
    from edgex.remote.ssh import Deadline, SshClient, SshOptions
    from edgex.remote.target import RemoteTarget

    strict = SshClient(RemoteTarget.parse("pi@host:2200"), SshOptions(), Deadline(10)).command("true")
    assert "StrictHostKeyChecking=yes" in strict and "BatchMode=yes" in strict and "-p" in strict
    assert any(o.startswith("ServerAliveInterval=") for o in strict)
    lenient = SshClient(RemoteTarget.parse("pi@host"), SshOptions(accept_new_host=True), Deadline(10)).command("true")
    assert "StrictHostKeyChecking=accept-new" in lenient


def test_outputs_bring_back_float_logits(sshd, device, tiny_artifacts, tmp_path):
    """run_child's contract on the device: --inputs goes there, float32 logits come back."""
    from edgex.bench.child import run_child
    from edgex.options import BenchSettings
    from edgex.remote.bench import RemoteDevice
    from edgex.remote.ssh import SshOptions
    from edgex.remote.target import RemoteTarget

    model = tiny_artifacts / "tflite-int8" / "model.tflite"
    inputs = tmp_path / "in.npy"
    np.save(inputs, np.random.default_rng(0).uniform(-1, 1, (3, 96, 96, 3)).astype(np.float32))
    settings = BenchSettings(min_runs=1, min_seconds=0, warmup=0)
    options = SshOptions(identity=sshd.client_key, known_hosts=sshd.known_hosts)
    with RemoteDevice(RemoteTarget.parse(sshd.remote), options, python=str(device)) as remote:
        answer = remote(model, "litert", "int8", settings, inputs, tmp_path / "remote.npy")
        assert remote.workspace.exists()
    assert answer["ok"] and answer["device"]["remote"] == sshd.remote
    local = run_child(model, "litert", "int8", settings, inputs, tmp_path / "local.npy")
    assert local["ok"]
    np.testing.assert_array_equal(np.load(tmp_path / "remote.npy"), np.load(tmp_path / "local.npy"))
    assert_device_clean(sshd)


def test_edgex_killed_mid_run_leaves_nothing_on_the_device(sshd, device, tiny_artifacts):
    """SIGKILL of edgex itself: its ssh clients see end-of-file, and so do the device's watchdog and anchor."""
    cmd = [sys.executable, "-m", "edgex", "bench", str(tiny_artifacts / "tflite-int8"), *map(str, sshd.ssh_args()),
           "--remote-python", str(device), "--min-runs", "1", "--min-seconds", "120", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_runner(sshd.device_tmp, seconds=60)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_device_clean(sshd, seconds=30)


def test_device_disk_full_exits_74(sshd, device, tiny_artifacts, tmp_path):
    """A device $TMPDIR with room for the runner but not the model (a 128 KiB tmpfs)."""
    small = tmp_path / "small-disk"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    key = tmp_path / "small_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    keys = sshd.folder / "authorized_keys"
    kept = keys.read_text()
    keys.write_text(kept + f'environment="TMPDIR={small}" ' + key.with_suffix(".pub").read_text())
    try:
        done = bench_remote(sshd, device, tiny_artifacts / "tflite-int8", key=key)
        assert_clean_failure(done, 74, "ran out of disk space", "Free space")
        deadline = time.monotonic() + 15
        while any(small.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(small.iterdir()) == []
    finally:
        keys.write_text(kept)
        subprocess.run(["umount", str(small)], check=False)


def test_overall_deadline_exits_75_and_cleans_up(sshd, device, tiny_artifacts):
    done = run_edgex("bench", tiny_artifacts / "tflite-int8", *sshd.ssh_args(), "--remote-python", device,
                     "--min-runs", "1", "--min-seconds", "120", "--remote-timeout", "8", "-q")
    assert_clean_failure(done, 75, "within the 8 s deadline", "--remote-timeout")
    assert_device_clean(sshd)


def test_watchdog_stops_the_runner_when_only_its_connection_drops(sshd, device):
    """The device side alone: the run's connection dies, the folder's anchor lives on; the runner must still stop.

    The kill comes as soon as the runner exists, often before Python has made its own process group: the
    watchdog must reach it then too (it once sent TERM to a group that did not exist yet, 3 runs in 4)."""
    import threading

    from edgex.errors import RemoteError
    from edgex.remote.ssh import Deadline, SshClient, SshOptions
    from edgex.remote.target import RemoteTarget
    from edgex.remote.workspace import RemoteWorkspace

    client = SshClient(RemoteTarget.parse(sshd.remote), SshOptions(identity=sshd.client_key,
                                                                   known_hosts=sshd.known_hosts), Deadline(120))
    failures = []

    def sleeper(workspace):
        try:
            workspace.python_call(["-c", "import time; time.sleep(120)"], what="sleeping")
        except RemoteError as error:
            failures.append(error)

    with RemoteWorkspace(client, str(device)) as workspace:
        thread = threading.Thread(target=sleeper, args=(workspace,))
        thread.start()
        runner = _wait_for_process(sshd.device_tmp, b"\0import time; time.sleep(120)", seconds=30)  # python, not sh
        os.kill(_sshd_ancestor(runner), signal.SIGKILL)
        thread.join(timeout=30)
        assert failures and "lost during sleeping" in failures[0].one_line()
        end = time.monotonic() + 15
        while not _gone(runner) and time.monotonic() < end:
            time.sleep(0.1)
        assert _gone(runner), Path(f"/proc/{runner}/stat").read_text()
        assert Path(workspace.dir).is_dir()  # the anchor still holds the folder: the watchdog did it
    assert_device_clean(sshd)


def _wait_for_process(folder: Path, needle: bytes, seconds: float) -> int:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for pid in _processes_in(folder):
            try:
                if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        time.sleep(0.1)
    raise AssertionError(f"no process with {needle!r} on the device")


def _gone(pid: int) -> bool:
    """Exited (a zombie no one has reaped yet counts: it runs nothing and holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"
