"""LiteRT adapter: ai-edge-litert (XNNPACK), falling back to tflite-runtime on devices with numpy 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def interpreter_class():
    """The LiteRT Interpreter class and the package that provided it."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"


class LiteRtAdapter:
    def __init__(self, path: Path, precision: str, threads: int | None = None):
        interpreter, package = interpreter_class()
        self.interpreter = interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.info = {"runtime": "litert", "package": package, "precision": precision,
                     "input_dtype": np.dtype(self.input["dtype"]).name}

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Runs image by image: TFLite graphs are converted with a fixed batch of one."""
        return np.concatenate([self._run_one(batch[i : i + 1]) for i in range(len(batch))])

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        if dtype != np.float32:
            scale, zero_point = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], x.astype(dtype))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if y.dtype != np.float32:
            scale, zero_point = self.output["quantization"]
            y = (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)
