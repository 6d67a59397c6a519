"""edgex: take a trained Xception classifier to the edge (int8 ONNX, OpenVINO IR, TFLite), verified.

    import edgex
    edgex.convert("model.keras", target="tflite", int8=True, calib_data="images/")

Importing edgex is cheap: TensorFlow, OpenVINO and ONNX Runtime load only when a function needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "convert"]


def __getattr__(name: str):
    if name == "convert":
        from edgex.api import convert

        return convert
    raise AttributeError(f"module 'edgex' has no attribute {name!r}")
