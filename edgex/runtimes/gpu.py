"""Which GPU back-ends can run artifacts here (or on a probed device), and why not when they cannot.

`--device gpu` uses ONNX Runtime's TensorRT then CUDA providers and OpenVINO's GPU plugin. A
provider that is merely compiled in is not enough: ONNX Runtime lists CUDA in a GPU build even on a
machine without a driver and then silently runs on the CPU, so the driver libraries are checked too,
and `ran_on_gpu` checks what a benchmark really used.
"""

from __future__ import annotations

import ctypes.util
import glob
import os

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_SHORT = {"TensorrtExecutionProvider": "TensorRT", "CUDAExecutionProvider": "CUDA"}
_LIBRARIES = {"CUDAExecutionProvider": ("cuda", "libcuda.so.1", "the NVIDIA driver"),
              "TensorrtExecutionProvider": ("nvinfer", "libnvinfer.so", "TensorRT (pip install tensorrt)")}


def _library_found(short: str, soname: str) -> bool:
    if ctypes.util.find_library(short):
        return True
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return any(glob.glob(f"{d}/{soname}*") for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d)


def gpu_backends(runtimes: dict | None = None, local: bool = True) -> list[dict]:
    """One row per GPU back-end: runtime, backend, available, reason (None when available).

    `runtimes` is the runner probe's "runtimes" section (this machine's when None). With `local`,
    driver libraries and device nodes are checked too (a remote probe cannot say more than its lists).
    """
    if runtimes is None:
        from edgex.runtimes import probe_runtimes

        runtimes = probe_runtimes()
    rows = [_onnx_row(runtimes.get("onnxruntime") or {}, provider, local) for provider in GPU_PROVIDERS]
    rows.append(_openvino_row(runtimes.get("openvino") or {}, local))
    return rows


def _onnx_row(ort: dict, provider: str, local: bool) -> dict:
    row = {"runtime": "onnxruntime", "backend": provider, "available": False, "reason": None}
    if not ort.get("available"):
        row["reason"] = "onnxruntime is not installed (pip install onnxruntime-gpu)"
    elif provider not in (ort.get("providers") or []):
        row["reason"] = (f"this onnxruntime {ort.get('version', '')} build has no {_SHORT[provider]}"
                         " provider (replace onnxruntime with onnxruntime-gpu)")
    elif local and not _library_found(*_LIBRARIES[provider][:2]):
        short, soname, what = _LIBRARIES[provider]
        row["reason"] = f"the provider is built in but {soname} is missing: install {what}"
    elif local and provider == "CUDAExecutionProvider" and not glob.glob("/dev/nvidia[0-9]*"):
        row["reason"] = "no NVIDIA GPU visible (/dev/nvidia0 absent; in a container, pass --gpus)"
    else:
        row["available"] = True
    return row


def _openvino_row(ov: dict, local: bool) -> dict:
    row = {"runtime": "openvino", "backend": "GPU", "available": False, "reason": None}
    devices = ov.get("devices") or []
    if not ov.get("available"):
        row["reason"] = "openvino is not installed (pip install openvino)"
    elif any(d.startswith("GPU") for d in devices):
        row["available"] = True
    elif local and not glob.glob("/dev/dri/renderD*"):
        row["reason"] = f"OpenVINO sees {', '.join(devices) or 'no devices'}: no Intel GPU (/dev/dri/renderD* absent)"
    else:
        row["reason"] = (f"OpenVINO sees {', '.join(devices) or 'no devices'}: install the Intel GPU compute runtime "
                         "(intel-opencl-icd) and add the user to the render group")
    return row


def ran_on_gpu(answer: dict) -> bool:
    """Whether a runner answer really ran on a GPU (ORT falls back to the CPU silently)."""
    info = answer.get("runtime") or {}
    if info.get("runtime") == "onnxruntime":
        return any(p in GPU_PROVIDERS for p in (info.get("providers") or [])[:1])
    if info.get("runtime") == "openvino":
        return str(info.get("device", "")).startswith("GPU")
    return False


def int8_on_cuda_note(answer: dict, precision: str | None) -> str | None:
    """Why an int8 QDQ artifact on ORT's CUDA provider is not faster than fp32: that provider has no int8
    convolution, so it runs float ones between the quantize/dequantize nodes (measured on an H200: 4.4 ms
    against fp32's 2.4 ms, docs/bench.md). None for any other run."""
    info = answer.get("runtime") or {}
    if (answer.get("ok") and precision == "int8" and info.get("runtime") == "onnxruntime"
            and (info.get("providers") or [None])[0] == "CUDAExecutionProvider"):
        return ("int8 ran on onnxruntime's CUDA provider, which has no int8 convolutions (float ones between the "
                "quantize/dequantize nodes): expect it slower than the fp32 artifact there; TensorRT's provider "
                "runs int8 (pip install tensorrt)")
    return None


def check_gpu_answer(answer: dict) -> dict:
    """Turn a `--device gpu` answer that silently ran on the CPU into an honest failure."""
    if answer.get("ok") and not ran_on_gpu(answer):
        info = answer.get("runtime") or {}
        used = ", ".join(info.get("providers") or [str(info.get("device", "CPU"))])
        return {"ok": False, "kind": "missing_runtime",
                "error": f"asked for the GPU but {info.get('runtime', 'the runtime')} ran on {used}",
                "hint": "The GPU provider failed to start; run edgex doctor to see why"}
    return answer
