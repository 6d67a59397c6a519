"""`edgex bundle`: a folder or tarball whose predict.py runs with Python, numpy, Pillow and the runtime alone, and
answers exactly as edgex does (same preprocessing, int8 scaling, labels and CSV)."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from helpers import CLASSES, run_edgex
from test_bench_fixtures import tiny_int8_artifacts, truncated_copy
from test_predict import odd_images

import edgex
from edgex.predict import standalone
from edgex.preprocess import Preprocess

BARE_PACKAGES = ("numpy", "pillow", "ai-edge-litert", "onnxruntime")
FORBIDDEN = ("edgex", "torch", "tensorflow", "keras")
STANDALONE = Path(standalone.__file__)
# Runs inside the bare venv: the bundle's own functions, saving the preprocessed inputs and the raw outputs.
DRIVER = """
import json, sys
from pathlib import Path
import numpy as np
bundle, images, out = Path(sys.argv[1]), sys.argv[2:-1], Path(sys.argv[-1])
sys.path.insert(0, str(bundle))
import predict
manifest = json.loads((bundle / "manifest.json").read_text())
paths = [p for p in predict.expand_inputs(images) if "truncated" not in p]
inputs = np.stack([predict.preprocess(predict.read_rgb(p), manifest["preprocess"]) for p in paths])
outputs = predict.open_model(bundle, manifest).run(inputs)
np.save(out / "inputs.npy", inputs)
np.save(out / "outputs.npy", outputs)
(out / "paths.json").write_text(json.dumps(paths))
"""


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory):
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


def bare_python() -> Path:
    """A venv holding only numpy, Pillow, ai-edge-litert and onnxruntime (this venv's versions, from the package
    index pip is configured with): no edgex, torch, TensorFlow or Keras. Built once per machine."""
    versions = {name: metadata.version(name) for name in BARE_PACKAGES}
    tag = f"bundle-py{sys.version_info.major}{sys.version_info.minor}-" + "-".join(
        f"{name}{version}" for name, version in versions.items())
    root = Path(os.environ.get("EDGEX_DEVICE_VENVS", "/tmp/edgex-test-device-venvs"))
    venv = root / tag
    if not (venv / ".complete").exists():
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock-bundle", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (venv / ".complete").exists():
                shutil.rmtree(venv, ignore_errors=True)
                base = getattr(sys, "_base_executable", sys.executable)
                subprocess.run([base, "-m", "venv", str(venv)], check=True)
                pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                                      "--disable-pip-version-check", *(f"{n}=={v}" for n, v in versions.items())],
                                     capture_output=True, text=True)
                assert pip.returncode == 0, f"pip could not build the bare venv: {pip.stderr[-500:]}"
                (venv / ".complete").write_text(tag)
    return venv / "bin" / "python"


def run_bare(*args, cwd: Path) -> subprocess.CompletedProcess:
    """The bare venv's python, isolated (-I: no PYTHONPATH, no user site), outside the repository."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([str(bare_python()), "-I", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_bare_venv_has_no_edgex_torch_tensorflow_or_keras(tmp_path):
    code = f"""import importlib, json
found = []
for name in {FORBIDDEN!r}:
    try:
        importlib.import_module(name)
        found.append(name)
    except ImportError:
        pass
print(json.dumps(found))"""
    done = run_bare("-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    have = run_bare("-c", "import numpy, PIL, onnxruntime, ai_edge_litert; print('ok')", cwd=tmp_path)
    assert have.stdout.strip() == "ok", have.stderr


def test_bundle_holds_the_model_labels_predict_py_readme_and_pinned_requirements(tiny_artifacts, tmp_path):
    artifact = tiny_artifacts / "tflite-int8"
    done = run_edgex("bundle", artifact, "--output", tmp_path / "app.tar.gz")
    assert done.returncode == 0, done.stderr
    with tarfile.open(tmp_path / "app.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        tar.extractall(tmp_path / "x", filter="data")
    (top,) = {name.split("/")[0] for name in members}
    assert top == "tiny_xception-tflite-int8" and members[f"{top}/predict.py"].mode == 0o755
    assert sorted(n.split("/", 1)[1] for n in members if "/" in n) == sorted(
        ["model.tflite", "manifest.json", "labels.txt", "predict.py", "requirements.txt", "README.md"])
    bundle = tmp_path / "x" / top
    assert (bundle / "predict.py").read_bytes() == STANDALONE.read_bytes()
    for name in ("model.tflite", "manifest.json"):
        assert (bundle / name).read_bytes() == (artifact / name).read_bytes()
    assert (bundle / "labels.txt").read_text().splitlines() == CLASSES
    manifest = json.loads((artifact / "manifest.json").read_text())
    requirements = [line for line in (bundle / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    litert = manifest["parity"]["runtime"]["version"]
    assert requirements == ["numpy>=1.24,<3", "pillow>=10", f"ai-edge-litert=={litert}"]  # numpy 1 or 2
    assert "tflite-runtime" in (bundle / "requirements.txt").read_text()  # the documented fallback
    readme = (bundle / "README.md").read_text()
    assert "## Run it on the device" in readme and "python3 -m pip install -r requirements.txt" in readme
    assert "python3 predict.py photos/ --csv predictions.csv" in readme and "tar xzf app.tar.gz" in readme

    again = run_edgex("bundle", artifact, "--output", tmp_path / "app.tar.gz")
    assert again.returncode == 73 and "--force" in again.stderr
    assert run_edgex("bundle", artifact, "--output", tmp_path / "app.tar.gz", "--force").returncode == 0
    inside = run_edgex("bundle", artifact, "--output", artifact / "b")
    assert inside.returncode == 2 and "overlaps" in inside.stderr
    broken = truncated_copy(artifact, tmp_path / "broken" / "tflite-int8")
    bad = run_edgex("bundle", broken, "--output", tmp_path / "bad")
    assert bad.returncode == 65 and "truncated" in bad.stderr and not (tmp_path / "bad").exists()
    assert run_edgex("bundle", tmp_path, "--output", tmp_path / "none").returncode == 66
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edgex-bundle")]


@pytest.mark.parametrize("target, output", [("tflite", "app.tar.gz"), ("onnx", "app")])
def test_predict_py_without_edgex_gives_edgex_answers(tiny_artifacts, images_dir, tmp_path, target, output):
    artifact = tiny_artifacts / f"{target}-int8"
    done = run_edgex("bundle", artifact, "--output", tmp_path / output)
    assert done.returncode == 0, done.stderr
    if output.endswith(".tar.gz"):
        with tarfile.open(tmp_path / output) as tar:
            tar.extractall(tmp_path / "device", filter="data")
        bundle = tmp_path / "device" / f"tiny_xception-{target}-int8"
    else:
        bundle = tmp_path / output
    odd = odd_images(tmp_path / "odd")
    (odd / "truncated.jpg").write_bytes(next(images_dir.rglob("*.jpg")).read_bytes()[:400])
    images = [images_dir, odd]

    device = run_bare(bundle / "predict.py", *images, "--top-k", "4", "--csv", tmp_path / "device.csv", cwd=tmp_path)
    assert device.returncode == 4, device.stderr  # the truncated image failed, the others did not
    assert "truncated.jpg  error: cannot decode" in device.stdout and "1 of 39 images failed" in device.stderr
    host = run_edgex("predict", artifact, *images, "--top-k", "4", "--csv", tmp_path / "host.csv", "-q")
    assert host.returncode == 4, host.stderr
    on_device, on_host = _csv(tmp_path / "device.csv"), _csv(tmp_path / "host.csv")
    assert [(r["path"], r["label"]) for r in on_device] == [(r["path"], r["label"]) for r in on_host]
    assert [[kv.split(":")[0] for kv in r["top_k"].split("|")] for r in on_device] == [
        [kv.split(":")[0] for kv in r["top_k"].split("|")] for r in on_host]
    for d, h in zip(on_device, on_host, strict=True):
        if h["probability"]:
            assert abs(float(d["probability"]) - float(h["probability"])) <= 1e-5

    (tmp_path / "out").mkdir()
    driver = run_bare("-c", DRIVER, bundle, *images, tmp_path / "out", cwd=tmp_path)
    assert driver.returncode == 0, driver.stderr
    paths = json.loads((tmp_path / "out" / "paths.json").read_text())
    assert len(paths) == 38  # 32 generated + 6 odd decodings; the truncated one is left out
    preprocess = Preprocess.from_dict(json.loads((bundle / "manifest.json").read_text())["preprocess"])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "inputs.npy"),
                                  np.stack([preprocess.load(Path(p)) for p in paths]))
    with edgex.load(artifact) as predictor:
        expected = predictor.predict(paths)
    outputs = np.load(tmp_path / "out" / "outputs.npy")
    np.testing.assert_allclose(outputs, expected.logits, atol=1e-5, rtol=0)
    assert list(outputs.argmax(axis=1)) == list(expected.indices)


def test_bundle_runs_over_ssh_after_scp(tiny_artifacts, images_dir, tmp_path):
    from sshd_fixture import running_sshd

    done = run_edgex("bundle", tiny_artifacts / "tflite-int8", "--output", tmp_path / "app.tar.gz")
    assert done.returncode == 0, done.stderr
    local = run_edgex("predict", tiny_artifacts / "tflite-int8", images_dir, "--csv", tmp_path / "host.csv", "-q")
    assert local.returncode == 0, local.stderr
    with running_sshd(tmp_path / "sshd") as server:
        options = ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(server.client_key), "-o",
                   f"UserKnownHostsFile={server.known_hosts}", "-o", "LogLevel=ERROR"]
        home = server.device_tmp
        copied = subprocess.run(["scp", *options, "-P", str(server.port), "-r", str(tmp_path / "app.tar.gz"),
                                 str(images_dir), f"{server.user}@127.0.0.1:{home}/"], capture_output=True, text=True,
                                timeout=60)
        assert copied.returncode == 0, copied.stderr
        script = (f"cd {home} && tar xzf app.tar.gz && cd tiny_xception-tflite-int8 && "
                  f"{bare_python()} -I predict.py ../{images_dir.name} --csv predictions.csv")
        remote = subprocess.run(["ssh", *options, "-p", str(server.port), f"{server.user}@127.0.0.1", script],
                                capture_output=True, text=True, timeout=120)
        assert remote.returncode == 0, remote.stderr
        on_device = _csv(home / "tiny_xception-tflite-int8" / "predictions.csv")
    on_host = _csv(tmp_path / "host.csv")
    assert len(on_device) == len(on_host) == 32 and len(remote.stdout.splitlines()) == 32
    assert [Path(r["path"]).relative_to(f"../{images_dir.name}") for r in on_device] == [
        Path(r["path"]).relative_to(images_dir) for r in on_host]
    assert [(r["label"], r["top_k"]) for r in on_device] == [(r["label"], r["top_k"]) for r in on_host]
