"""Versions of the tools that built an artifact, read from package metadata (no imports)."""

from __future__ import annotations

from importlib import metadata

TOOLS = ("edgex", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "openvino", "nncf",
         "ai-edge-litert", "tflite-runtime", "numpy")


def tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
