"""Artifacts built from a PyTorch source vs the original Keras kitchenware model, on its 18 photos.

Usage (after `edgex port --output kw.safetensors` and `edgex convert --model kw.safetensors ...`):
    python benchmarks/torch_kitchenware_parity.py [kw.safetensors] ARTIFACT_DIR...
Prints, for the PyTorch source (if given) and each artifact folder (with manifest.json), the
largest |logit - Keras logit| and the top-1 agreement with Keras over the 18 photos.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}


def main(paths: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgex.preprocess import find_images
    from edgex.runtimes import open_runtime
    from edgex.sources.load import default_calibration_dir, load_source

    keras_source = load_source(None)
    photos = find_images(default_calibration_dir())
    batch = np.stack([keras_source.preprocess.load(p) for p in photos])
    reference = keras_source.predict(batch)
    print(f"{'model':<48} {'photos':>6} {'max|diff|':>10} {'top-1 agree':>12}")
    for item in map(Path, paths):
        if item.is_file():
            logits = load_source(item).predict(batch)
            name = f"{item.name} (PyTorch source)"
        else:
            manifest = json.loads((item / "manifest.json").read_text())
            runtime = open_runtime(RUNTIMES[manifest["target"]], item / manifest["model_file"], manifest["precision"])
            logits = np.concatenate([runtime.run(batch[i : i + 1]) for i in range(len(batch))])
            name = f"{manifest['target']}-{manifest['precision']} ({manifest['inputs'][0].get('layout')})"
        diff = float(np.abs(logits - reference).max())
        agree = int((logits.argmax(1) == reference.argmax(1)).sum())
        print(f"{name:<48} {len(photos):>6} {diff:>10.3g} {agree:>9}/{len(photos)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
