"""The model shape Keras' transfer-learning guide teaches, at full size, through plain `convert --target all --int8`.

    .venv/bin/python benchmarks/keras_guide_model.py [--build build]

Input (raw 0..255) -> RandomFlip -> RandomRotation -> Rescaling(1/127.5, offset=-1) -> Xception backbone
(kitchenware package weights, training=False) -> GlobalAveragePooling2D -> Dropout(0.2) -> Dense: the
clothing head from ../shared. Converted with no flag beyond the calibration folder (validation/), then
every artifact evaluated on clothing test/ against the same model in float; prints top-1 and each drop
with its paired bootstrap 95% interval.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, shared_dir  # noqa: E402

EDGEX = [sys.executable, "-m", "edgex"]


def build(path: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    from keras import layers

    sys.path.insert(0, str(shared_dir() / "tools"))
    from build_head_model import kitchenware_model_path

    head = np.load(shared_dir() / "models" / "clothing_head.npz")
    backbone = keras.applications.Xception(weights=None, include_top=False, input_shape=(299, 299, 3))
    backbone.set_weights(keras.saving.load_model(kitchenware_model_path()).get_layer("xception").get_weights())
    backbone.trainable = False
    augmentation = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)],
                                    name="data_augmentation")
    inputs = keras.Input((299, 299, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(augmentation(inputs))
    x = layers.GlobalAveragePooling2D()(backbone(x, training=False))
    x = layers.Dropout(0.2)(x)
    dense = layers.Dense(len(head["classes"]))
    model = keras.Model(inputs, dense(x))
    dense.set_weights([head["kernel"], head["bias"]])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    path.with_suffix(".classes.json").write_text(json.dumps([str(c) for c in head["classes"]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=REPO / "build")
    args = ap.parse_args()
    clothing = shared_dir() / "datasets" / "clothing-small"
    model = args.build / "keras_guide" / "guide_xception.keras"
    if not model.is_file():
        build(model)
    out = args.build / "keras_guide" / "out"
    if not out.exists():
        done = subprocess.run([*EDGEX, "convert", "--model", str(model), "--target", "all", "--int8", "--calib-data",
                               str(clothing / "validation"), "--output", str(out)], capture_output=True, text=True)
        print(done.stdout.strip())
        if done.returncode != 0:
            raise SystemExit(f"convert failed ({done.returncode}): {done.stderr.strip()}")
    report = args.build / "keras_guide" / "report"
    done = subprocess.run([*EDGEX, "eval", str(out / model.stem), "--eval-data", str(clothing / "test"), "--output",
                           str(report), "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"eval failed ({done.returncode}): {done.stderr.strip()}")
    data = json.loads((report / "report.json").read_text())
    print(f"FP32 (Keras, raw pixels in): top-1 {data['references'][0]['accuracy']['top1']:.4f} "
          f"on {data['references'][0]['accuracy']['n']} test images")
    for row in data["results"]:
        vs = row["vs_source"]
        print(f"{row['name']}: top-1 {row['accuracy']['top1']:.4f}, drop (FP32 − int8) {vs['drop_pp']:+.2f} pp "
              f"[{vs['ci95_pp'][0]:+.2f}, {vs['ci95_pp'][1]:+.2f}], agreement {vs['agreement']:.4f}")


if __name__ == "__main__":
    main()
