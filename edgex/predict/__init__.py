"""Predict with an artifact: `edgex predict`, `edgex.load(...)` and the deploy bundle's predict.py.

    with edgex.load("out/m/tflite-int8") as p:
        p.predict(["a.jpg", pil_image, uint8_batch]).labels

Preprocessing, int8 scaling, class names and the output kind all come from the artifact's manifest.
Modules load lazily: `edgex --help` must not pay for numpy or a runtime.
"""

from __future__ import annotations

__all__ = ["Prediction", "Predictions", "Predictor", "load"]


def __getattr__(name: str):
    if name in ("Predictor", "load"):
        from edgex.predict import model

        return getattr(model, name)
    if name in ("Prediction", "Predictions"):
        from edgex.predict import result

        return getattr(result, name)
    raise AttributeError(f"module 'edgex.predict' has no attribute {name!r}")
