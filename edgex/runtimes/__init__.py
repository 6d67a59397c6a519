"""Runtime adapters: load an artifact in the runtime that will really run it, feed it float batches.

Every adapter has the same small interface: `Adapter(path, precision, threads)`, `.info` (what
ran: runtime, version, precision), `.run(batch) -> float32 logits`. Quantized inputs and
outputs are converted inside the adapter, so callers always speak preprocessed float32.
"""

from __future__ import annotations

import importlib
from pathlib import Path

_ADAPTERS = {
    "onnxruntime": "edgex.runtimes.onnxruntime:OnnxRuntimeAdapter",
    "openvino": "edgex.runtimes.openvino:OpenVinoAdapter",
    "litert": "edgex.runtimes.litert:LiteRtAdapter",
}


def open_runtime(runtime: str, path: Path, precision: str, threads: int | None = None):
    module, cls = _ADAPTERS[runtime].split(":")
    return getattr(importlib.import_module(module), cls)(Path(path), precision, threads)
