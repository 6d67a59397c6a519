"""edgex: take a trained Xception classifier to the edge (int8 ONNX, OpenVINO IR, TFLite), verified.

    import edgex
    artifacts = edgex.convert("model.keras", target="tflite", precision="int8", calib_data="images/")
    print(artifacts[0].path, artifacts[0].parity["agreement"], artifacts[0].predict(["photo.jpg"]).labels)
    with edgex.load("edgex-out/model/tflite-int8") as p:
        print(p.predict(["photo.jpg"]).labels)

Importing edgex is cheap: TensorFlow, OpenVINO and ONNX Runtime load only when a function needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Artifact", "BudgetOptions", "CalibrationOptions", "ParityOptions", "PreprocessOverrides",
           "__version__", "convert", "load"]

# public name -> the module that defines it, imported on first use
_LAZY = {"convert": "edgex.api", "load": "edgex.predict.model", "Artifact": "edgex.artifacts.artifact",
         **{name: "edgex.options" for name in ("BudgetOptions", "CalibrationOptions", "ParityOptions",
                                               "PreprocessOverrides")}}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgex' has no attribute {name!r}")
