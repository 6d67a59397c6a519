"""The source model as a runtime, so the FP32 reference is measured through the same interface.

The runtime key stays "keras" (artifact-free callers and old reports use it); what it reports is the
source's own framework: Keras on TensorFlow, a SavedModel, or PyTorch.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import numpy as np


def source_runtime_info(framework: str, threads: int | None) -> dict:
    """What ran the source: its framework, package and version (not always Keras)."""
    from edgex.versions import tool_versions

    versions = tool_versions()
    if framework in ("torch", "onnx"):
        package, backend = {"torch": "torch", "onnx": "onnxruntime"}[framework], None
    else:
        package = "keras" if framework == "keras" else "tensorflow"
        backend = "tensorflow " + versions.get("tensorflow-cpu", versions.get("tensorflow", "?"))
    return {"name": framework, "runtime": framework, "package": package, "version": versions.get(package),
            "backend": backend, "precision": "fp32", "precision_ran": "fp32", "threads": threads}


class SourceSession:
    """`trust_model`: also load formats that run code (.h5, SavedModel, .pt2), as `edgex.load` allows."""

    def __init__(self, path: Path, precision: str | None = None, threads: int | None = None, device: str = "cpu",
                 trust_model: bool = False):
        from edgex.sources.load import load_source

        if threads and not trust_model and importlib.util.find_spec("tensorflow") is not None:
            import tensorflow as tf

            with contextlib.suppress(RuntimeError):  # only possible before TensorFlow's first op
                tf.config.threading.set_intra_op_parallelism_threads(threads)
        self.source = load_source(path, trust_model=trust_model)
        self.preprocess = self.source.preprocess
        self.info = source_runtime_info(self.source.framework, threads)

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.preprocess.input_shape[1:])

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.source.predict(batch.astype(np.float32, copy=False))
