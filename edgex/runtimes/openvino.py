"""OpenVINO adapter (CPU). fp32 artifacts run with INFERENCE_PRECISION_HINT=f32: on CPUs with bf16
(AMX or AVX512_BF16) the plugin otherwise silently runs bf16. `info` reports the precision that ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OpenVinoAdapter:
    def __init__(self, path: Path, precision: str, threads: int | None = None):
        import openvino as ov

        core = ov.Core()
        config = {}
        if precision == "fp32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        ran = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.info = {"runtime": "openvino", "version": ov.get_version(), "device": "CPU",
                     "precision": precision,
                     "inference_precision": ran.get_type_name() if hasattr(ran, "get_type_name") else str(ran)}

    def run(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: batch.astype(np.float32, copy=False)})
        return np.asarray(result[self.compiled.output(0)], dtype=np.float32)
