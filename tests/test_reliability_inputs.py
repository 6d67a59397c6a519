"""Inputs that do not fit the model: one clear line with expected and actual shapes, exit 2/65, no artifact."""

from __future__ import annotations

import os

import numpy as np
import pytest
from failure_checks import assert_clean_failure
from helpers import run_edgex

from edgex.errors import DataError, UsageError
from edgex.preprocess import Preprocess
from edgex.safety.inputs import check_input_fits, require_finite


def test_wrong_input_size_is_2_with_both_shapes(tiny_model, tmp_path):
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--input-size", "100",
                     "--output", tmp_path / "out")
    assert_clean_failure(done, 2, "(1, 100, 100, 3)", "(None, 96, 96, 3)", "--input-size", output=tmp_path / "out")


def test_nchw_for_an_nhwc_model_is_2_and_says_so(tiny_model, tmp_path):
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--layout", "NCHW",
                     "--output", tmp_path / "out")
    assert_clean_failure(done, 2, "(1, 3, 96, 96)", "NHWC", "drop --layout NCHW", output=tmp_path / "out")


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory, request):
    """A small valid Keras model whose every output is NaN/Inf: classifier weights that are NaN (found by
    the load gate, naming the weight), or finite but overflowing float32 (found on the parity images)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    inputs = keras.Input((96, 96, 3), name="image")
    conv = keras.layers.Conv2D(4, 3, strides=4)
    x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    dense = keras.layers.Dense(4)
    model = keras.Model(inputs, dense(x))
    kernel, bias = dense.get_weights()
    dense.set_weights([np.full_like(kernel, request.param), bias])
    if np.isfinite(request.param):
        conv_kernel, conv_bias = conv.get_weights()
        conv.set_weights([np.full_like(conv_kernel, request.param), conv_bias])
    path = tmp_path_factory.mktemp("nan") / "nan_model.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("nan_model, reason", [(np.nan, "holds"), (3e38, "NaN/Inf")], indirect=["nan_model"],
                         ids=["nan-weights", "overflowing-weights"])
def test_nan_producing_model_is_65_and_writes_no_artifact(nan_model, reason, images_dir, tmp_path):
    done = run_edgex("convert", "--model", nan_model, "--target", "onnx", "--int8", "--calib-data", images_dir,
                     "--calib-size", "8", "--output", tmp_path / "out")
    assert_clean_failure(done, 65, "NaN", reason, "nan_model.keras", output=tmp_path / "out")


def test_check_input_fits_cases():
    nhwc = (None, 96, 96, 3)
    check_input_fits(nhwc, Preprocess(96, 96), "m")
    check_input_fits((None, None, None, 3), Preprocess(50, 70), "m")  # free spatial size: anything fits
    with pytest.raises(UsageError, match=r"expects \(None, 96, 96, 3\)"):
        check_input_fits(nhwc, Preprocess(90, 96), "m")
    with pytest.raises(UsageError) as caught:
        check_input_fits((None, 3, 96, 96), Preprocess(96, 96), "m")
    assert "pass --layout NCHW" in caught.value.one_line()
    with pytest.raises(DataError, match="1-channel"):
        check_input_fits((None, 96, 96, 1), Preprocess(96, 96), "m")


def test_require_finite_names_what_it_checked():
    require_finite(np.ones(3), "x", "fix")
    with pytest.raises(DataError, match="logits of m holds 2 NaN/Inf"):
        require_finite(np.array([1.0, np.nan, np.inf]), "logits of m", "fix")
