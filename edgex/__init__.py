"""edgex: take a trained Xception classifier to the edge (int8 ONNX, OpenVINO IR, TFLite), verified.

    import edgex
    edgex.convert("model.keras", target="tflite", precision="int8", calib_data="images/")
    with edgex.load("edgex-out/model/tflite-int8") as p:
        print(p.predict(["photo.jpg"]).labels)

Importing edgex is cheap: TensorFlow, OpenVINO and ONNX Runtime load only when a function needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "convert", "load"]


def __getattr__(name: str):
    if name == "convert":
        from edgex.api import convert

        return convert
    if name == "load":
        from edgex.predict.model import load

        return load
    raise AttributeError(f"module 'edgex' has no attribute {name!r}")
