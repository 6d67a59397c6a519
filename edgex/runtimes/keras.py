"""The Keras source as a runtime, so the FP32 reference is measured through the same interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class KerasSession:
    def __init__(self, path: Path, precision: str | None = None, threads: int | None = None, device: str = "cpu"):
        from edgex.sources import load_source

        if threads:
            import contextlib

            import tensorflow as tf

            with contextlib.suppress(RuntimeError):  # only possible before TensorFlow's first op
                tf.config.threading.set_intra_op_parallelism_threads(threads)
        self.source = load_source(path)
        self.preprocess = self.source.preprocess
        from edgex.versions import tool_versions

        versions = tool_versions()
        self.info = {"name": "keras", "runtime": "keras", "package": "keras", "version": versions.get("keras"),
                     "backend": "tensorflow " + versions.get("tensorflow-cpu", versions.get("tensorflow", "?")),
                     "precision": "fp32", "precision_ran": "fp32", "threads": threads}

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.preprocess.input_shape[1:])

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.source.predict(batch.astype(np.float32, copy=False))
