"""runner.py: the one-file latency protocol that also runs alone on edge devices."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_bench_fixtures import tiny_int8_artifacts, truncated_copy

from edgex.bench.child import RUNNER

ALLOWED_IMPORTS = {"argparse", "contextlib", "json", "os", "platform", "sys", "time", "threading", "importlib",
                   "pathlib", "numpy", "resource", "__future__", "onnxruntime", "openvino", "ai_edge_litert",
                   "tflite_runtime"}


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory):
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


def _runner(*args, cwd=None, isolated=False) -> tuple[int, dict]:
    cmd = [sys.executable, *(["-I"] if isolated else []), str(RUNNER if cwd is None else cwd / "runner.py"),
           *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_runner_imports_only_stdlib_numpy_and_runtimes():
    tree = ast.parse(RUNNER.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    assert names <= ALLOWED_IMPORTS, names - ALLOWED_IMPORTS
    assert "__import__(module" in RUNNER.read_text()  # runtimes are imported by name inside the session classes


def test_probe_from_a_lone_copy_describes_machine_and_runtimes(tmp_path):
    shutil.copy(RUNNER, tmp_path / "runner.py")  # as on a Raspberry Pi: no edgex next to it
    code, info = _runner("probe", cwd=tmp_path, isolated=True)
    assert code == 0 and info["ok"] is True
    assert info["cores_logical"] >= 1 and info["machine"] and info["python"].count(".") == 2
    assert isinstance(info["isa"], list) and info["memory_total_mb"] > 0
    assert info["runtimes"]["onnxruntime"]["available"] and "CPUExecutionProvider" in info["runtimes"]["onnxruntime"][
        "providers"]
    assert info["runtimes"]["openvino"]["devices"]
    assert info["runtimes"]["litert"]["package"] in ("ai-edge-litert", "tflite-runtime")


def test_run_reports_the_latency_contract(tiny_artifacts, tmp_path):
    shutil.copy(RUNNER, tmp_path / "runner.py")
    code, result = _runner("run", "--artifact", tiny_artifacts / "onnx-int8" / "model.onnx", "--runtime",
                           "onnxruntime", "--threads", "1", "--min-runs", "4", "--min-seconds", "0", "--warmup", "1",
                           cwd=tmp_path, isolated=True)
    assert code == 0, result
    assert result["ok"] and result["runs"] >= 4 and result["seconds"] > 0 and result["batch"] == 1
    stats = result["latency_ms"]
    assert set(stats) == {"mean", "std", "min", "p50", "p90", "p99", "max"}
    assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert result["load_ms"] > 0 and result["first_inference_ms"] > 0 and result["peak_rss_mb"] > 10
    assert result["runtime"]["name"] == "onnxruntime" and result["runtime"]["providers"] == ["CPUExecutionProvider"]
    assert result["runtime"]["precision_ran"] == "int8"  # read from the manifest beside the model
    assert abs(result["throughput_ips"] - 1000 / stats["mean"]) < 1e-6


def test_outputs_for_inputs_match_in_process_runtime_including_quantized_io(tiny_artifacts, tmp_path):
    from edgex.runtimes import open_runtime

    inputs = np.random.default_rng(1).uniform(-1, 1, (5, 96, 96, 3)).astype(np.float32)
    np.save(tmp_path / "in.npy", inputs)
    for folder, model, runtime in (("onnx-int8", "model.onnx", "onnxruntime"), ("tflite-int8", "model.tflite",
                                                                                  "litert")):
        out = tmp_path / f"{runtime}.npy"
        code, result = _runner("run", "--artifact", tiny_artifacts / folder / model, "--runtime", runtime,
                               "--min-runs", "2", "--min-seconds", "0", "--batch", "2", "--inputs", tmp_path / "in.npy",
                               "--outputs", out)
        assert code == 0, result
        logits = np.load(out)
        assert logits.shape == (5, 4) and logits.dtype == np.float32 and result["outputs_shape"] == [5, 4]
        expected = open_runtime(runtime, tiny_artifacts / folder / model, "int8").run(inputs)
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_truncated_model_is_load_failed_with_exit_70(tiny_artifacts, tmp_path):
    broken = truncated_copy(tiny_artifacts / "onnx-int8", tmp_path / "broken")
    code, result = _runner("run", "--artifact", broken / "model.onnx", "--runtime", "onnxruntime",
                           "--min-runs", "1", "--min-seconds", "0")
    assert code == 70 and result["ok"] is False and result["kind"] == "load_failed"
    assert "model.onnx" in result["error"] and result["hint"]


def test_missing_runtime_is_69_with_an_install_hint(tiny_artifacts):
    blocker = ("import sys, importlib.abc\n"
               "class Block(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path, target=None):\n"
               "        if name.split('.')[0] in ('ai_edge_litert', 'tflite_runtime'): raise ImportError(name)\n"
               "sys.meta_path.insert(0, Block())\n"
               f"sys.path.insert(0, {str(RUNNER.parent)!r})\n"
               "import runner; sys.exit(runner.main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", blocker, "run", "--artifact",
                           str(tiny_artifacts / "tflite-int8" / "model.tflite"), "--runtime", "litert"],
                          capture_output=True, text=True, timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 69 and result["kind"] == "missing_runtime"
    assert "ai-edge-litert" in result["hint"] and "tflite-runtime" in result["hint"]


def test_mismatched_inputs_are_bad_input(tiny_artifacts, tmp_path):
    np.save(tmp_path / "in.npy", np.zeros((2, 32, 32, 3), np.float32))
    code, result = _runner("run", "--artifact", tiny_artifacts / "onnx-int8" / "model.onnx", "--runtime",
                           "onnxruntime", "--inputs", tmp_path / "in.npy", "--outputs", tmp_path / "out.npy")
    assert code == 65 and result["kind"] == "bad_input" and "(N, 96, 96, 3)" in result["error"]
    assert not Path(tmp_path / "out.npy").exists()


def test_gpu_without_a_gpu_provider_is_missing_runtime(tiny_artifacts):
    import onnxruntime as ort

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
        pytest.skip("this machine has a GPU provider")
    code, result = _runner("run", "--artifact", tiny_artifacts / "onnx-int8" / "model.onnx", "--runtime",
                           "onnxruntime", "--device", "gpu")
    assert code == 69 and result["kind"] == "missing_runtime" and "onnxruntime-gpu" in result["hint"]


def test_a_dead_runner_becomes_a_crashed_row():
    from edgex.bench.child import parse_answer

    answer = parse_answer("", "Fatal Python error: Segmentation fault\n", -11)
    assert answer == {"ok": False, "kind": "crashed", "hint": None,
                      "error": "runner died (signal SIGSEGV): Fatal Python error: Segmentation fault"}
    assert parse_answer('noise\n{"ok": true, "runs": 3}\n', "", 0) == {"ok": True, "runs": 3}
    assert parse_answer("not json", "", 1)["error"] == "runner died (exit code 1): (no output)"


def test_threads_default_to_the_usable_cores_of_the_machine_that_runs(tiny_artifacts, tmp_path):
    """No --threads: every runtime gets the runner's own usable cores (a device's, not its host's); taskset
    stands in for a smaller machine."""
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs taskset and at least 2 usable cores")
    model = tiny_artifacts / "tflite-int8" / "model.tflite"
    args = ["run", "--artifact", model, "--runtime", "litert", "--min-runs", "1", "--min-seconds", "0", "--warmup", "0"]
    code, result = _runner(*args)
    assert code == 0, result
    assert result["threads"] == result["runtime"]["threads"] == len(os.sched_getaffinity(0))
    one_core = ["taskset", "-c", str(min(os.sched_getaffinity(0))), sys.executable, str(RUNNER)]
    for command, key in ((args, "threads"), (["probe"], "cores_usable")):
        done = subprocess.run([*one_core, *map(str, command)], capture_output=True, text=True, timeout=300)
        assert json.loads(done.stdout.strip().splitlines()[-1])[key] == 1, done.stderr[-500:]
    code, result = _runner(*args, "--threads", "1")
    assert code == 0 and result["threads"] == 1


def test_every_runtime_is_opened_with_the_default_threads(tiny_artifacts, monkeypatch):
    """LiteRT left alone runs 1 thread, ONNX Runtime the physical cores: the runner passes its count to each."""
    from edgex.bench import runner

    monkeypatch.setattr(runner, "usable_cores", lambda: 1)  # OpenVINO caps it at the cores there are
    onnx = tiny_artifacts / "onnx-int8" / "model.onnx"
    ort_session = runner.open_session("onnxruntime", onnx, "int8")
    assert ort_session.session.get_session_options().intra_op_num_threads == 1 == ort_session.info["threads"]
    ov_session = runner.open_session("openvino", onnx, "int8")  # OpenVINO reads ONNX too
    assert int(ov_session.compiled.get_property("INFERENCE_NUM_THREADS")) == 1 == ov_session.info["threads"]
    assert str(ov_session.compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")
    interpreter, _ = runner.litert_interpreter()
    seen = {}

    class Spy(interpreter):
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runner, "litert_interpreter", lambda: (Spy, "ai-edge-litert"))
    litert = runner.open_session("litert", tiny_artifacts / "tflite-int8" / "model.tflite", "int8")
    assert seen["num_threads"] == 1 == litert.info["threads"]


def test_runner_command_line_defaults_are_edgexs():
    """runner.py stands alone on devices, so it repeats edgex's timing defaults: they must not drift apart."""
    from edgex.bench.runner import build_parser
    from edgex.options import BenchSettings

    defaults = BenchSettings()
    args = build_parser().parse_args(["run", "--artifact", "m", "--runtime", "litert"])
    assert (args.threads, args.min_runs, args.min_seconds, args.warmup, args.batch, args.device) == (
        defaults.threads, defaults.min_runs, defaults.min_seconds, defaults.warmup, defaults.batch, defaults.device)


def test_the_onnxruntime_row_names_the_build_that_was_imported(tmp_path, monkeypatch):
    """onnxruntime (CPU) installed, onnxruntime-gpu unpacked earlier on PYTHONPATH: the GPU build runs, and the
    report must not name the CPU one (seen on an H200 machine, where the rows said 'onnxruntime 1.30.0' while
    1.31.1 from onnxruntime-gpu ran)."""
    import importlib
    import sys
    import types

    from edgex.bench.runner import module_distribution

    for site, dist in (("cpu", "fakert"), ("gpu", "fakert_gpu")):
        (tmp_path / site / "fakert").mkdir(parents=True)
        (tmp_path / site / "fakert" / "__init__.py").write_text(f"BUILD = '{site}'\n")
        info = tmp_path / site / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "cpu"))
    monkeypatch.syspath_prepend(str(tmp_path / "gpu"))  # first on the path, as PYTHONPATH puts it
    monkeypatch.delitem(sys.modules, "fakert", raising=False)
    importlib.invalidate_caches()
    module = importlib.import_module("fakert")
    assert module.BUILD == "gpu"
    assert module_distribution(module, "fakert", "fakert-gpu") == "fakert-gpu"
    assert module_distribution(module, "fakert") == "fakert"  # only one candidate: that one
    assert module_distribution(module, "absent") is None
    elsewhere = types.SimpleNamespace(__file__=str(tmp_path / "vendored" / "fakert" / "__init__.py"))
    assert module_distribution(elsewhere, "fakert", "fakert-gpu") is None  # neither: do not guess
