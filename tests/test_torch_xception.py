"""The PyTorch Xception: Keras' parameter count, TF 'same' max-pool padding, sizes, heads."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgex.models.torch_xception import (  # noqa: E402
    SamePadMaxPool,
    XceptionConfig,
    build_xception,
    keras_parameter_count,
)


def test_full_xception_has_keras_parameter_count():
    model = build_xception(XceptionConfig(num_classes=1000))
    # keras.applications.Xception(weights=None).count_params(), BN moving statistics included.
    assert keras_parameter_count(model) == 22_910_480
    assert sum(p.numel() for p in model.parameters()) == 22_910_480 - 54_528
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # Chollet's 36 convolution layers (2 stem + 34 separable) plus 4 strided 1x1 residual convs.
    separable = sum(1 for c in convs if c.groups > 1)
    assert separable == 34 and len(convs) - 2 * separable == 2 + 4


def tf_same_maxpool(x: np.ndarray) -> np.ndarray:
    """TensorFlow's 3x3/2 'same' max-pool written out: pad total//2 before, the rest after, with -inf."""
    n, c, h, w = x.shape
    out_h, out_w = -(-h // 2), -(-w // 2)
    pad_h, pad_w = max((out_h - 1) * 2 + 3 - h, 0), max((out_w - 1) * 2 + 3 - w, 0)
    padded = np.full((n, c, h + pad_h, w + pad_w), -np.inf, np.float32)
    padded[:, :, pad_h // 2 : pad_h // 2 + h, pad_w // 2 : pad_w // 2 + w] = x
    out = np.empty((n, c, out_h, out_w), np.float32)
    for i in range(out_h):
        for j in range(out_w):
            out[:, :, i, j] = padded[:, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(2, 3))
    return out


@pytest.mark.parametrize("size", [(8, 8), (9, 9), (8, 11), (37, 10), (4, 5)])
def test_max_pool_matches_tensorflow_same_padding(size):
    x = np.random.default_rng(0).normal(size=(2, 3, *size)).astype(np.float32) - 5.0  # all negative: pads matter
    got = SamePadMaxPool()(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, tf_same_maxpool(x))


@pytest.mark.parametrize("size", [(71, 71), (72, 72), (96, 96), (150, 150), (97, 120)])
def test_tiny_variant_runs_any_size_from_71(size):
    config = XceptionConfig.scaled(width=0.125, middle_blocks=1, num_classes=5, input_size=size)
    model = build_xception(config)
    with torch.inference_mode():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_inputs_below_71_are_refused():
    with pytest.raises(ValueError, match="at least 71"):
        XceptionConfig.scaled(width=0.125, input_size=(70, 96))


def test_heads_features_linear_and_dense():
    x = torch.randn(1, 3, 71, 71)
    base = {"width": 0.125, "middle_blocks": 0, "input_size": (71, 71)}
    features = build_xception(XceptionConfig.scaled(head="features", **base))
    linear = build_xception(XceptionConfig.scaled(head="linear", num_classes=3, **base))
    dense = build_xception(XceptionConfig.scaled(head="dense", num_classes=6, hidden_units=10, dropout=0.2, **base))
    with torch.inference_mode():
        assert features(x).shape == (1, features.feature_size)
        assert linear(x).shape == (1, 3)
        assert dense(x).shape == (1, 6)
    assert [type(m).__name__ for m in dense.head] == ["Linear", "Dropout", "Linear"]
    assert XceptionConfig.from_dict(dense.config.to_dict()) == dense.config
