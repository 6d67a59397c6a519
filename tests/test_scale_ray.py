"""`edgex eval --ray` on a real two-node Ray cluster on loopback (head + one more node, one CPU each).

The cluster (ray.cluster_utils.Cluster: real GCS, raylets and worker processes) is started by the module
fixture and torn down after it; the logits of the tiny int8 artifacts computed on it must give the same
per-image results as the local runner, also when a worker process is SIGKILLed in the middle of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from failure_checks import assert_clean_failure
from helpers import run_edgex
from test_bench_fixtures import tiny_int8_artifacts

from edgex.bench.artifacts import find_artifacts
from edgex.bench.child import run_child
from edgex.bench.suite import run_suite
from edgex.errors import DataError
from edgex.evaluation.dataset import load_labelled, preprocess_images
from edgex.options import BenchSettings
from edgex.preprocess import Preprocess

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'edgex[ray]' (make setup does)")

EVAL = BenchSettings(latency=False, batch=4)
OBJECT_STORE = 100 * 1024 * 1024  # per node: the tiny shards need a few MB


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory):
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node, one CPU each, on 127.0.0.1; this process is the driver."""
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from the test cluster either
    options = {"num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False}
    two = Cluster(initialize_head=True, head_node_args=options)
    try:
        two.add_node(**{k: v for k, v in options.items() if k != "include_dashboard"})
        two.wait_for_nodes()
        ray.init(address=two.address, log_to_driver=False, logging_level="ERROR")
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        yield two
    finally:
        ray.shutdown()
        two.shutdown()


def _inputs(artifact: Path, images_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    manifest = json.loads((artifact / "manifest.json").read_text())
    data = load_labelled(images_dir, manifest["classes"])
    return preprocess_images(data.files, Preprocess.from_dict(manifest["preprocess"])), data.labels


def _local_logits(artifact: Path, inputs: np.ndarray, tmp_path: Path) -> np.ndarray:
    (ref,) = find_artifacts([artifact])
    np.save(tmp_path / "in.npy", inputs)
    answer = run_child(ref.model_file, ref.runtime, ref.precision, EVAL, tmp_path / "in.npy", tmp_path / "local.npy")
    assert answer["ok"], answer
    return np.load(tmp_path / "local.npy")


def _ray_logits(runner, artifact: Path, inputs: np.ndarray, tmp_path: Path) -> tuple[dict, np.ndarray]:
    (ref,) = find_artifacts([artifact])
    answer = runner(ref.model_file, ref.runtime, ref.precision, EVAL, inputs, tmp_path / "ray.npy")
    assert answer["ok"], answer
    return answer, np.load(tmp_path / "ray.npy")


def _same_per_image(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> None:
    """index by index: the same top-k classes and the same correct/wrong, and the same logits."""
    assert a.shape == b.shape == (len(labels), a.shape[1])
    assert (np.argsort(-a, axis=1, kind="stable") == np.argsort(-b, axis=1, kind="stable")).all()
    assert ((a.argmax(1) == labels) == (b.argmax(1) == labels)).all()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_two_nodes_give_the_local_per_image_results(cluster, tiny_artifacts, images_dir, tmp_path):
    from edgex.scale.ray_eval import RayPreprocessor, RayRunner

    artifact = tiny_artifacts / "onnx-int8"
    inputs, labels = _inputs(artifact, images_dir)
    manifest = json.loads((artifact / "manifest.json").read_text())
    data = load_labelled(images_dir, manifest["classes"])
    preprocess = Preprocess.from_dict(manifest["preprocess"])
    assert np.array_equal(RayPreprocessor(shard_size=5)(data.files, preprocess), inputs)  # decoded on the nodes
    runner = RayRunner(workers=2, threads=1, shard_size=5)  # 32 images: 7 shards, the last one short
    answer, remote = _ray_logits(runner, artifact, inputs, tmp_path)
    _same_per_image(_local_logits(artifact, inputs, tmp_path), remote, labels)
    scale = answer["scale"]
    assert scale["images"] == len(inputs) == 32 and scale["shards"] == 7 and scale["retried_shards"] == 0
    assert len({i["pid"] for i in runner.worker_info}) == 2 and scale["workers"] == 2


def test_a_worker_killed_mid_run_changes_no_number(cluster, tiny_artifacts, images_dir, tmp_path):
    """SIGKILL one actor's process after the first shard: its shards are retried, nothing is counted twice."""
    from edgex.scale.ray_eval import RayRunner

    killed: list[int] = []

    def kill_one(runner: RayRunner, shard: int) -> None:
        if not killed:
            pid = runner.worker_info[-1]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    artifact = tiny_artifacts / "onnx-int8"
    inputs, labels = _inputs(artifact, images_dir)
    runner = RayRunner(workers=2, threads=1, shard_size=2, on_result=kill_one)  # 16 shards: work left to lose
    answer, remote = _ray_logits(runner, artifact, inputs, tmp_path)
    assert killed
    _same_per_image(_local_logits(artifact, inputs, tmp_path), remote, labels)
    assert answer["scale"]["images"] == 32
    started = {info["pid"] for info in runner.worker_info}
    assert set(answer["scale"]["worker_pids"]) - started, "no shard ran on the restarted worker"  # Ray retried


def test_eval_report_on_the_cluster_equals_the_local_report(cluster, tiny_artifacts, images_dir, tmp_path):
    """The CLI joins the cluster (--ray-address) in its own process; report.json matches a local run."""
    artifact = tiny_artifacts / "onnx-int8"
    done = run_edgex("eval", artifact, "--eval-data", images_dir, "--ray-address", cluster.address,
                     "--shard-size", "8", "--batch", "4", "--output", tmp_path / "r", "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    remote = json.loads((tmp_path / "r" / "report.json").read_text())
    local = run_suite([artifact], EVAL, images_dir, reporter=None)
    (row,), (want,) = remote["results"], local["results"]
    assert row["accuracy"] == want["accuracy"] and row["accuracy"]["n"] == 32
    # agreement and the paired bootstrap CI against FP32; the mean cosine to float rounding (shards sum apart)
    assert row["vs_source"] == {**want["vs_source"], "cosine": pytest.approx(want["vs_source"]["cosine"], abs=1e-6)}
    assert remote["references"] == local["references"]
    assert row["scale"]["images"] == 32 and row["scale"]["shards"] == 4 and len(row["scale"]["nodes"]) >= 1
    assert remote["settings"]["scale"]["address"] == cluster.address


def test_bench_times_here_and_evaluates_on_the_cluster(cluster, tiny_artifacts, images_dir):
    done = run_edgex("bench", tiny_artifacts / "onnx-int8", "--eval-data", images_dir, "--ray-address",
                     cluster.address, "--no-source", "--min-runs", "3", "--min-seconds", "0", "--warmup", "1",
                     "--json", "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(done.stdout)["results"]
    assert row["runs"] >= 3 and row["latency_ms"]["p50"] > 0  # timed in a child process on this machine
    assert row["accuracy"]["n"] == 32 and row["scale"]["images"] == 32  # the images went to the cluster


def test_corrupt_image_is_a_counted_skip(cluster, tiny_artifacts, images_dir, tmp_path):
    import argparse

    from edgex.scale.suite import run_scaled_suite

    data = tmp_path / "data"
    shutil.copytree(images_dir, data)
    bad = next(data.glob("*/a")) / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = argparse.Namespace(artifacts=[tiny_artifacts / "onnx-int8"], eval_data=data, source=None, no_source=True,
                              ray=True, ray_address=None, ray_workers=2, shard_size=8, skip_bad_images=True)
    report = run_scaled_suite(args, EVAL)
    (row,) = report["results"]
    assert row["accuracy"]["n"] == 32 and report["eval_data"]["count"] == 33
    assert report["eval_data"]["evaluated"] == 32
    (skipped,) = report["eval_data"]["skipped_bad_images"]
    assert skipped["file"] == str(bad) and "cannot decode image" in skipped["reason"]
    args.skip_bad_images = False  # as locally: the run stops with 65, naming the file (decoded on a worker)
    with pytest.raises(DataError, match=f"cannot decode image {bad}"):
        run_scaled_suite(args, EVAL)


def test_ctrl_c_stops_the_cluster_work_and_writes_no_report(cluster, tiny_artifacts, images_dir, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", EDGEX_TEST_PAUSE_AT="ray-shards",
               EDGEX_TEST_PAUSE_FILE=str(tmp_path / "paused"))
    cmd = [sys.executable, "-m", "edgex", "eval", str(tiny_artifacts / "onnx-int8"), "--eval-data", str(images_dir),
           "--ray-address", cluster.address, "--no-source", "--output", str(tmp_path / "r"), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        end = time.monotonic() + 60
        while not (tmp_path / "paused").exists() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
        assert (tmp_path / "paused").exists(), proc.communicate(timeout=10)[1][-2000:]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_clean_failure(subprocess.CompletedProcess(cmd, proc.returncode, "", stderr), 130, "interrupted")
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())
    end = time.monotonic() + 20  # its actors are killed: the cluster's CPUs come back
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < end:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2


def test_unreachable_address_is_one_line_and_exit_75(tiny_artifacts, images_dir):
    from sshd_fixture import _free_port

    done = run_edgex("eval", tiny_artifacts / "onnx-int8", "--eval-data", images_dir,
                     "--ray-address", f"127.0.0.1:{_free_port()}")
    assert_clean_failure(done, 75, "cannot reach the Ray cluster at 127.0.0.1:")


def test_without_ray_installed_the_flag_says_which_extra(tiny_artifacts, images_dir, tmp_path):
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "edgex", "eval", str(tiny_artifacts / "onnx-int8"), "--eval-data",
                           str(images_dir), "--ray"], capture_output=True, text=True, env=env, timeout=120)
    assert_clean_failure(done, 2, "--ray needs Ray", "pip install 'edgex[ray]'")


@pytest.mark.parametrize(("args", "needle"), [
    (("bench", "--ray"), "--ray shards the evaluation images; it needs --eval-data"),
    (("eval", "--eval-data", "x", "--ray", "--remote", "pi@pi"), "--ray and --remote cannot be combined"),
    (("eval", "--eval-data", "x", "--ray", "--shard-size", "0"), "--shard-size must be at least 1"),
])
def test_flags_that_cannot_work_together_are_usage_errors(tiny_artifacts, args, needle):
    command, *rest = args
    done = run_edgex(command, tiny_artifacts / "onnx-int8", *rest)
    assert_clean_failure(done, 2, needle)
