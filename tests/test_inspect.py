"""edgex inspect: what edgex sees in a model, before converting it."""

from __future__ import annotations

import json

from helpers import CLASSES, run_edgex


def test_xception_structure_from_layer_names():
    from edgex.sources.inspect import xception_structure

    names = [f"block{i}_sepconv1" for i in range(1, 15)]
    assert xception_structure(names) == {"is_xception": True, "blocks": 14, "entry_flow": [1, 2, 3, 4],
                                         "middle_blocks": 8, "exit_flow": [13, 14]}
    assert not xception_structure(["conv2d", "dense"])["is_xception"]


def test_inspect_tiny_model_json(tiny_model):
    done = run_edgex("inspect", tiny_model, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    info = json.loads(done.stdout)
    assert info["architecture"]["is_xception"] and info["architecture"]["middle_blocks"] == 2
    assert info["classes"] == CLASSES and info["output_kind"] == "logits"
    assert info["preprocess"]["mean"] == [127.5, 127.5, 127.5]
    assert info["inference_graph"]["removed"] == []
    assert set(info["targets"]) == {"onnx", "openvino", "tflite"}


def test_inspect_names_bypassed_layers_and_raw_pixel_input(tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(tmp_path / "m.keras")
    done = run_edgex("inspect", tmp_path / "m.keras")
    assert done.returncode == 0, done.stderr
    assert "raw 0..255 pixels" in done.stdout and "Rescaling(scale=0.00392157, offset=0)" in done.stdout
    assert "random_flip (RandomFlip)" in done.stdout and "(Dropout)" in done.stdout
    assert "output kind: softmax" in done.stdout and "not an Xception" in done.stdout
