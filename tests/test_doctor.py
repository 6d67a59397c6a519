"""`edgex doctor`, the int8 outlook per CPU, and GPU back-ends reported unavailable with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_edgex
from test_bench_fixtures import tiny_int8_artifacts

from edgex.runtimes.doctor import int8_outlook
from edgex.runtimes.gpu import check_gpu_answer, gpu_backends, int8_on_cuda_note


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory) -> Path:
    """OUT/tiny_xception/{onnx,tflite}-int8, converted once per session (shared with the bench tests)."""
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


@pytest.mark.parametrize("machine, isa, fast, needle", [
    ("x86_64", ["avx2", "avx512f", "avx512_vnni"], True, "avx512_vnni"),
    ("x86_64", ["avx2", "avx_vnni"], True, "avx_vnni"),
    ("x86_64", ["sse4_2", "avx", "avx2", "fma"], False, "no VNNI"),
    ("x86_64", ["sse4_2"], False, "no AVX2"),
    ("aarch64", ["neon", "asimd", "asimddp", "i8mm"], True, "dotprod"),
    ("aarch64", ["neon", "asimd"], False, "no NEON dotprod"),  # Raspberry Pi 4 (Cortex-A72)
    ("armv7l", ["neon"], False, "32-bit"),
    ("riscv64", [], None, "unknown"),
])
def test_int8_outlook_explains_the_cpu(machine, isa, fast, needle):
    outlook = int8_outlook(machine, isa)
    assert outlook["int8_dot_product"] is fast
    assert needle in outlook["why"]


def _rows(runtimes, local=False):
    return {row["backend"]: row for row in gpu_backends(runtimes, local=local)}


def test_gpu_backends_say_why_they_are_unavailable():
    rows = _rows({"onnxruntime": {"available": False}, "openvino": {"available": False}})
    assert "pip install onnxruntime-gpu" in rows["CUDAExecutionProvider"]["reason"]
    assert "pip install openvino" in rows["GPU"]["reason"]
    cpu_build = _rows({"onnxruntime": {"available": True, "version": "1.32.0", "providers": ["CPUExecutionProvider"]},
                       "openvino": {"available": True, "devices": ["CPU"]}})
    assert "no CUDA provider" in cpu_build["CUDAExecutionProvider"]["reason"]
    assert "no TensorRT provider" in cpu_build["TensorrtExecutionProvider"]["reason"]
    assert "OpenVINO sees CPU" in cpu_build["GPU"]["reason"]
    assert not any(row["available"] for row in cpu_build.values())


def test_gpu_backends_available_when_listed():
    rows = _rows({"onnxruntime": {"available": True, "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
                  "openvino": {"available": True, "devices": ["CPU", "GPU.0"]}})
    assert rows["CUDAExecutionProvider"]["available"] and rows["CUDAExecutionProvider"]["reason"] is None
    assert rows["GPU"]["available"] and not rows["TensorrtExecutionProvider"]["available"]


def test_cuda_provider_without_driver_is_unavailable(monkeypatch):
    """A GPU build of ONNX Runtime lists CUDA even where no driver is: that is not a GPU."""
    import edgex.runtimes.gpu

    monkeypatch.setattr(edgex.runtimes.gpu, "_library_found", lambda short, soname: False)
    rows = _rows({"onnxruntime": {"available": True, "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                                   "CPUExecutionProvider"]}}, local=True)
    assert not rows["CUDAExecutionProvider"]["available"] and "libcuda.so.1" in rows["CUDAExecutionProvider"]["reason"]
    assert "libnvinfer" in rows["TensorrtExecutionProvider"]["reason"]


def test_silent_cpu_fallback_is_reported_as_a_failure():
    fell_back = {"ok": True, "runtime": {"runtime": "onnxruntime", "providers": ["CPUExecutionProvider"]}}
    checked = check_gpu_answer(fell_back)
    assert not checked["ok"] and checked["kind"] == "missing_runtime" and "CPUExecutionProvider" in checked["error"]
    on_gpu = {"ok": True, "runtime": {"runtime": "onnxruntime", "providers": ["CUDAExecutionProvider",
                                                                             "CPUExecutionProvider"]}}
    assert check_gpu_answer(on_gpu) is on_gpu


def test_doctor_json_describes_this_machine():
    done = run_edgex("doctor", "--json")
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)
    machine = findings["machine"]
    assert machine["python"] and machine["numpy"] and machine["cores_logical"] >= 1
    assert {"litert", "onnxruntime", "openvino"} <= set(machine["runtimes"])
    assert machine["runtimes"]["onnxruntime"]["available"]  # the dev venv has it
    for row in findings["gpu"]:
        assert row["available"] is (row["reason"] is None)
    assert findings["int8"]["why"]


def test_int8_on_cuda_is_named_slower_than_fp32_and_nothing_else_is():
    """Measured on an H200: the int8 QDQ artifact 4.4 ms on CUDA, fp32 2.4 ms (docs/bench.md)."""
    def answer(providers):
        return {"ok": True, "runtime": {"runtime": "onnxruntime", "providers": providers}}

    note = int8_on_cuda_note(answer(["CUDAExecutionProvider", "CPUExecutionProvider"]), "int8")
    assert note and "slower than the fp32" in note and "TensorRT" in note
    assert int8_on_cuda_note(answer(["CUDAExecutionProvider", "CPUExecutionProvider"]), "fp32") is None
    assert int8_on_cuda_note(answer(["TensorrtExecutionProvider", "CUDAExecutionProvider"]), "int8") is None
    assert int8_on_cuda_note(answer(["CPUExecutionProvider"]), "int8") is None
    assert int8_on_cuda_note({"ok": False}, "int8") is None


def test_doctor_text_names_runtimes_gpu_and_int8():
    done = run_edgex("doctor")
    assert done.returncode == 0, done.stderr
    assert "runtimes:" in done.stdout and "gpu:" in done.stdout and "int8" in done.stdout
    assert "onnxruntime" in done.stdout and "litert" in done.stdout


def test_bench_on_gpu_without_a_provider_reports_it(tiny_artifacts, tmp_path):
    """`--device gpu` where ONNX Runtime has no GPU provider: a failed row with the reason, not a crash."""
    if {r["backend"]: r for r in gpu_backends()}["CUDAExecutionProvider"]["available"]:
        pytest.skip("this machine has a CUDA provider: the missing-provider path cannot be shown here")
    done = run_edgex("bench", tiny_artifacts / "onnx-int8", "--device", "gpu", "--min-runs", "1", "--min-seconds",
                     "0", "--output", tmp_path, "-q")
    assert done.returncode == 4, done.stderr
    (row,) = json.loads((tmp_path / "report.json").read_text())["results"]
    assert row["status"] == "failed" and row["kind"] == "missing_runtime"
    assert "no GPU provider" in row["error"] and "onnxruntime-gpu" in row["hint"]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("flags", "said"), [({"avx2", "fma"}, True), ({"avx2", "avx512_vnni"}, False)])
def test_convert_int8_says_up_front_when_this_cpu_has_no_int8_dot_product(monkeypatch, flags, said):
    import platform

    import edgex.conversion.build as build
    import edgex.isa
    from edgex.progress import Reporter

    lines: list[str] = []

    class Collect(Reporter):
        def info(self, message: str) -> None:
            lines.append(message)

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(edgex.isa, "cpu_flags", lambda: frozenset(flags))
    build._say_int8_outlook(Collect())
    assert bool(lines) == said
    if said:
        assert "no VNNI" in lines[0] and "edgex doctor" in lines[0]
