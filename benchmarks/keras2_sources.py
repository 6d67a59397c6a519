"""Write the trained clothing Xception as the Keras 2 files users have: tf_keras `.h5` (logits head),
`.h5` (softmax head) and `.keras`, to check that edgex reads what TensorFlow 2.x wrote.

    .venv/bin/pip install --no-deps tf-keras==2.21.0     # here only; edgex never imports it at run time
    .venv/bin/python ../shared/tools/build_head_model.py ../shared/models/clothing_head.npz \
        /tmp/k2/clothing_xception.keras
    .venv/bin/python benchmarks/keras2_sources.py /tmp/k2/clothing_xception.keras /tmp/k2

A tf_keras `applications.Xception(weights=None, include_top=False)` + GlobalAveragePooling2D + Dense(10)
receives the Keras 3 model's trained weights layer by layer (the layer names are keras.applications'), is
checked against the Keras 3 model on a fixed input, and saved three ways. Then convert and evaluate each:

    edgex convert --model /tmp/k2/clothing_k2_logits.h5 --trust-model --target all --int8 \
        --calib-data ../shared/datasets/clothing-small/validation --output /tmp/k2/out
    edgex eval /tmp/k2/out/clothing_k2_logits --data ../shared/datasets/clothing-small/test
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def build(source: Path, out: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tf_keras

    trained = keras.saving.load_model(source, compile=False)
    weights = [layer.get_weights() for layer in _leaves(trained) if layer.weights]  # keras.applications order
    fixed = np.random.default_rng(0).uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    expected = np.asarray(trained(fixed, training=False))
    classes = source.with_suffix(".classes.json")
    out.mkdir(parents=True, exist_ok=True)
    for name, activation in (("logits", None), ("softmax", "softmax")):
        base = tf_keras.applications.Xception(weights=None, include_top=False, input_shape=(299, 299, 3))
        x = tf_keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
        head = tf_keras.layers.Dense(10, activation=activation, name="predictions")
        model = tf_keras.Model(base.input, head(x), name="xception")
        targets = [layer for layer in model.layers if layer.weights]  # in keras.applications' order, by shape
        assert len(targets) == len(weights), (len(targets), len(weights))
        for layer, values in zip(targets, weights, strict=True):
            layer.set_weights(values)  # raises on any shape mismatch
        got = np.asarray(model(fixed, training=False))
        reference = keras.ops.convert_to_numpy(keras.ops.softmax(expected)) if activation else expected
        print(f"tf_keras {name} head vs the Keras 3 model: max |difference| {np.max(np.abs(got - reference)):.2e}")
        files = [out / f"clothing_k2_{name}.h5"] + ([out / "clothing_k2.keras"] if activation is None else [])
        for path in files:
            model.save(path)
            if classes.is_file():
                path.with_suffix(".classes.json").write_text(json.dumps(json.loads(classes.read_text())))
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def _leaves(model):
    for layer in model.layers:
        yield from _leaves(layer) if hasattr(layer, "layers") else [layer]


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))
