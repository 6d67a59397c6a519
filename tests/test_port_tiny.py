"""`edgex port` on the tiny Keras Xception: weights mapped, outputs verified, nothing written on failure."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch")

from helpers import CLASSES, leftovers, run_edgex  # noqa: E402


@pytest.fixture(scope="module")
def ported(tiny_model, images_dir, tmp_path_factory):
    from edgex.sources.port import port_keras

    out = tmp_path_factory.mktemp("ported") / "tiny.safetensors"
    return out, port_keras(tiny_model, out, verify_data=images_dir)


def test_port_writes_weights_and_sidecar(ported):
    out, summary = ported
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert out.is_file() and sidecar["architecture"] == "xception"
    assert sidecar["classes"] == CLASSES
    assert sidecar["config"]["middle_blocks"] == 2 and sidecar["config"]["head"] == "linear"
    assert sidecar["config"]["channels"] == [8, 8, 16, 32, 88, 128, 192, 256]
    assert sidecar["preprocess"]["height"] == 96 and sidecar["preprocess"]["layout"] == "NHWC"
    check = summary["verification"]
    assert check["inputs"] == 32 + 4 and check["max_abs_logit_diff"] <= 1e-3
    assert check["top1_agreement"] == check["inputs"]


def test_ported_source_predicts_like_keras(ported, tiny_model, images_dir):
    from edgex.preprocess import find_images
    from edgex.sources.load import load_source

    keras_source = load_source(tiny_model)
    torch_source = load_source(ported[0])
    assert torch_source.framework == "torch" and torch_source.classes == CLASSES
    assert torch_source.preprocess == keras_source.preprocess
    batch = np.stack([keras_source.preprocess.load(p) for p in find_images(images_dir)[:8]])
    np.testing.assert_allclose(torch_source.predict(batch), keras_source.predict(batch), atol=1e-3)


def test_port_fails_verification_with_exit_3_and_writes_nothing(tiny_model, tmp_path):
    out = tmp_path / "strict.safetensors"
    done = run_edgex("port", "--model", tiny_model, "--output", out, "--tolerance", "1e-12")
    assert done.returncode == 3, done.stderr
    assert "differs from Keras" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and not out.with_suffix(".json").exists() and not leftovers(tmp_path)


def test_port_refuses_a_model_that_is_not_an_xception(tmp_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edgex.errors import DataError
    from edgex.sources.port import port_keras

    inputs = keras.Input((80, 80, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    path = tmp_path / "small.keras"
    model.save(path)
    with pytest.raises(DataError, match="has a bias|not an Xception") as caught:
        port_keras(path, tmp_path / "small.safetensors")
    assert caught.value.exit_code == 65
    assert not (tmp_path / "small.safetensors").exists()


def test_a_keras_xception_exports_to_onnx_through_the_port(tiny_model, images_dir, tmp_path, monkeypatch):
    """`convert`'s ONNX export of a Keras Xception (no tf2onnx): the graph answers like Keras on real images, takes
    NHWC like the source, and names its output; where the port is not exact nothing is written and the reason is
    returned (the converter then falls back to tf2onnx)."""
    import onnxruntime as ort

    from edgex.sources import keras_port_export
    from edgex.sources.load import load_source

    source = load_source(tiny_model)
    try:
        out = tmp_path / "fp32.onnx"
        assert keras_port_export.export_via_port(source, out, 17) is None
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        (image,), (output,) = session.get_inputs(), session.get_outputs()
        assert image.shape[1:] == [96, 96, 3] and output.name == "logits"
        batch = np.stack([source.preprocess.load(p) for p in sorted(images_dir.rglob("*.png"))[:6]])
        np.testing.assert_allclose(session.run(None, {image.name: batch})[0], source.predict(batch), atol=1e-4)

        monkeypatch.setattr(keras_port_export, "PORT", SimpleNamespace(tolerance=-1.0))  # no difference is below it
        refused = tmp_path / "refused.onnx"
        why = keras_port_export.export_via_port(source, refused, 17)
        assert why.startswith("the PyTorch port differs from Keras by") and not refused.exists()
    finally:
        source.close()
