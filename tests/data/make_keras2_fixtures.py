"""Regenerate the Keras 2 fixtures in tests/data/keras2/ with tf_keras (run only on purpose).

    .venv/bin/pip install --no-deps tf-keras==2.21.0   # for this script only; edgex never imports it
    .venv/bin/python tests/data/make_keras2_fixtures.py

Writes what tf_keras 2.21's `model.save` writes for a tiny Xception-like classifier (entry Conv2D + BN +
ReLU, one SeparableConv2D block with BN, max pooling and a strided 1x1 residual Add, global average
pooling, Dense) at 32x32, seeded weights, BatchNorm statistics from the generated images and a
ridge-regression head fitted on them:

- `logits.h5`: the flat model, logits head;
- `softmax.h5`: the same model with Dense(activation="softmax");
- `nested.keras`: the backbone as a nested Functional model (as `base = Xception(...); base(x)`), logits;
- `expected.npz`: a fixed input batch and each file's tf_keras outputs on it, which the tests compare
  with edgex's Keras 3 rebuild (1e-4).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "keras2"
SIZE = 32
sys.path.insert(0, str(HERE.parent))


def backbone(k, inputs):
    layers = k.layers
    x = layers.Conv2D(8, 3, strides=2, use_bias=False, name="block1_conv1")(inputs)
    x = layers.BatchNormalization(name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    residual = layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False, name="block2_res")(x)
    residual = layers.BatchNormalization(name="block2_res_bn")(residual)
    x = layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="block2_sepconv1")(x)
    x = layers.BatchNormalization(name="block2_sepconv1_bn")(x)
    x = layers.Activation("relu", name="block2_sepconv2_act")(x)
    x = layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="block2_sepconv2")(x)
    x = layers.BatchNormalization(name="block2_sepconv2_bn")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="block2_pool")(x)
    x = layers.Add(name="add")([x, residual])
    return layers.GlobalAveragePooling2D(name="avg_pool")(x)


def seeded(model, images, rng) -> None:
    """Seeded conv weights, then each BatchNorm's moving statistics measured on `images` (layer by layer)."""
    import tf_keras as k

    for layer in model.layers:
        if type(layer).__name__ in ("Conv2D", "SeparableConv2D", "Dense"):
            layer.set_weights([rng.normal(0, np.sqrt(2 / np.prod(w.shape[:-1])), w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            values = np.asarray(k.Model(model.inputs, layer.input)(images, training=False))
            gamma = rng.uniform(0.5, 1.5, values.shape[-1]).astype(np.float32)
            beta = rng.normal(0, 0.1, values.shape[-1]).astype(np.float32)
            layer.set_weights([gamma, beta, values.mean(axis=(0, 1, 2)), values.var(axis=(0, 1, 2)) + 1e-3])


def fit_head(features: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A ridge-regression linear head on one-hot targets (scaled to give confident logits)."""
    x = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    targets = np.eye(classes)[labels] * 8 - 4
    solved = np.linalg.solve(x.T @ x + 1e-2 * np.eye(x.shape[1]), x.T @ targets)
    return solved[:-1].astype(np.float32), solved[-1].astype(np.float32)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras as k
    from helpers import CLASSES, write_images

    from edgex.evaluation.labelled import labelled_folder
    from edgex.preprocess import Preprocess

    k.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        files, labels, _ = labelled_folder(write_images(Path(tmp) / "images"), CLASSES)
        pre = Preprocess(height=SIZE, width=SIZE, mean=(127.5,) * 3, std=(127.5,) * 3)
        images = np.stack([pre.load(f) for f in files]).astype(np.float32)

    inputs = k.Input((SIZE, SIZE, 3), name="image")
    features = backbone(k, inputs)
    flat = k.Model(inputs, features, name="features")
    seeded(flat, images, rng)
    kernel, bias = fit_head(np.asarray(flat(images, training=False)), np.asarray(labels), len(CLASSES))

    OUT.mkdir(exist_ok=True)
    fixed = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    expected = {"input": fixed}
    for name, activation in (("logits", None), ("softmax", "softmax")):
        head = k.layers.Dense(len(CLASSES), activation=activation, name="predictions")
        model = k.Model(inputs, head(features), name=f"tiny_{name}")
        head.set_weights([kernel, bias])
        model.save(OUT / f"{name}.h5")
        expected[name] = np.asarray(model(fixed, training=False))

    nested_inputs = k.Input((SIZE, SIZE, 3), name="pixels")
    x = flat(nested_inputs, training=False)
    x = k.layers.Dropout(0.2, name="dropout")(x)
    head = k.layers.Dense(len(CLASSES), name="predictions")
    nested = k.Model(nested_inputs, head(x), name="tiny_nested")
    head.set_weights([kernel, bias])
    nested.save(OUT / "nested.keras")
    expected["nested"] = np.asarray(nested(fixed, training=False))
    np.savez(OUT / "expected.npz", **expected)
    for path in sorted(OUT.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
