"""The real kitchenware Xception ported to PyTorch agrees with Keras on all 18 photos within 1e-3."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_kitchenware_port_matches_keras_on_the_18_photos(tmp_path):
    from edgex.preprocess import find_images
    from edgex.sources.load import default_calibration_dir, kitchenware_root, load_source
    from edgex.sources.port import port_keras

    if kitchenware_root() is None:
        pytest.skip("the embedded kitchenware model is not installed")
    out = tmp_path / "kw.safetensors"
    summary = port_keras(None, out)
    assert summary["verification"]["images"] == 18
    assert summary["verification"]["max_abs_logit_diff"] <= 1e-3
    keras_source, torch_source = load_source(None), load_source(out)
    assert torch_source.classes == keras_source.classes and torch_source.preprocess == keras_source.preprocess
    photos = find_images(default_calibration_dir())
    assert len(photos) == 18
    batch = np.stack([keras_source.preprocess.load(p) for p in photos])
    expected, got = keras_source.predict(batch), torch_source.predict(batch)
    assert np.abs(got - expected).max() <= 1e-3
    assert (got.argmax(1) == expected.argmax(1)).all()
