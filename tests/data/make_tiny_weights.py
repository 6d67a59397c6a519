"""Regenerate tests/data/tiny_xception.weights.npz, the tiny Xception's weights (run only on purpose).

    .venv/bin/python tests/data/make_tiny_weights.py

The suite never trains: it loads these committed weights, so the tiny model is the same bytes on
every machine (a float forward pass differs in its last bits between CPUs, and a head fitted on it
would too). A seeded random Xception (width 1/8, 2 middle blocks, 96x96) gets BatchNorm statistics
and a ridge-regression head from the generated images; the weights are stored as float16 values.
After regenerating, update TINY_WEIGHTS_SHA256 in tests/helpers.py and rerun the suite on a
machine without VNNI as well (the int8 margin test says why).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def recalibrate_batchnorm(model, images) -> None:
    """Set every BatchNormalization's moving statistics to those of `images`, layer by layer.

    Random conv weights with default BN statistics shrink activations ~10x per block, leaving
    features near 1e-4; re-estimated statistics keep every layer at a realistic scale.
    """
    import keras
    import numpy as np

    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        values = np.asarray(keras.Model(model.inputs, layer.input)(images, training=False))
        layer.moving_mean.assign(values.mean(axis=(0, 1, 2)))
        layer.moving_variance.assign(values.var(axis=(0, 1, 2)) + 1e-3)


def fit_linear_head(model, images, labels, ridge: float = 1e-2) -> None:
    """Fit the dense head by ridge regression on one-hot targets, so logits separate the classes.

    A random-weight network gives near-tie logits, which makes any parity test meaningless.
    """
    import keras
    import numpy as np

    features = keras.Model(model.inputs, model.get_layer("avg_pool").output)(images, training=False)
    features = np.asarray(features, np.float64)
    scale = features.std() + 1e-12
    design = np.hstack([features / scale, np.ones((len(features), 1))])
    classes = model.get_layer("logits").units
    targets = np.eye(classes)[labels] * 10.0 - 5.0
    solution = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]), design.T @ targets)
    kernel, bias = solution[:-1] / scale, solution[-1]
    model.get_layer("logits").set_weights([kernel.astype(np.float32), bias.astype(np.float32)])


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tempfile

    import keras
    from helpers import CLASSES, TINY_SIZE, write_images

    from edgex.evaluation.labelled import labelled_folder, preprocess_all
    from edgex.models.keras_xception import build_xception
    from edgex.preprocess import Preprocess

    keras.utils.set_random_seed(0)
    model = build_xception(input_size=TINY_SIZE, classes=len(CLASSES), width=0.125, middle_blocks=2)
    with tempfile.TemporaryDirectory() as tmp:
        write_images(Path(tmp))
        files, labels, _ = labelled_folder(Path(tmp), CLASSES)
        inputs = preprocess_all(files, Preprocess(TINY_SIZE, TINY_SIZE))
    recalibrate_batchnorm(model, inputs)
    fit_linear_head(model, inputs, labels)
    weights = {f"w{i:03d}": w.astype(np.float16) for i, w in enumerate(model.get_weights())}
    np.savez_compressed(HERE / "tiny_xception.weights.npz", **weights)
    print(f"wrote {HERE / 'tiny_xception.weights.npz'} ({sum(w.size for w in weights.values())} values)")


if __name__ == "__main__":
    main()
