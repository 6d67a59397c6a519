"""ONNX Runtime adapter (CPU provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxRuntimeAdapter:
    def __init__(self, path: Path, precision: str, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.info = {"runtime": "onnxruntime", "version": ort.__version__, "provider": "CPUExecutionProvider",
                     "precision": precision}

    def run(self, batch: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(None, {self.input_name: batch.astype(np.float32, copy=False)})
        return np.asarray(logits, dtype=np.float32)
