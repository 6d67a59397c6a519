"""Defects a close read found (architecture issue), each pinned by a test that failed before its fix."""

from __future__ import annotations

import pytest


def test_openvino_minmax_estimator_reaches_nncf():
    """--calib-method minmax was written into the manifest recipe but never passed to nncf.quantize."""
    from edgex.calibration.recipes import recipe_named
    from edgex.converters.openvino import _advanced
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    params = _advanced(recipe_named("openvino", None, "minmax"))
    assert params.activations_range_estimator_params == RangeEstimatorParametersSet.MINMAX
    assert _advanced(recipe_named("openvino", None)).activations_range_estimator_params != \
        RangeEstimatorParametersSet.MINMAX


def test_runtime_load_failure_is_a_typed_error_not_exit_1(tmp_path):
    """RunnerError escaped the parity check and the accuracy budget as 'internal error' (exit 1)."""
    from edgex.errors import EXIT_INTERNAL, EdgexError
    from edgex.runtimes import open_runtime

    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x08\x07not an onnx model")
    with pytest.raises(EdgexError) as caught:
        open_runtime("onnxruntime", broken, "int8")
    assert caught.value.exit_code != EXIT_INTERNAL


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_missing_calibration_in_a_converter_is_exit_66(target, tmp_path):
    """Each converter raised the base EdgexError (exit 1) where the pipeline raises 66."""
    import importlib

    from edgex.converters.base import ConvertOptions

    from edgex.errors import EXIT_NO_INPUT, EdgexError

    class _Source:  # reaches the calibration check before anything touches the model
        framework = "keras"

        def saved_model(self):
            raise AssertionError("must not export before checking the calibration set")

    converter = importlib.import_module(f"edgex.converters.{target}")
    with pytest.raises(EdgexError) as caught:
        converter.convert(_Source(), tmp_path, ConvertOptions(precision="int8"), None)
    assert caught.value.exit_code == EXIT_NO_INPUT


def test_tflite_target_requires_the_litert_runtime():
    """The parity check runs TFLite artifacts in LiteRT; `requires` listed TensorFlow only."""
    from edgex.converters import TARGETS

    assert "ai_edge_litert" in TARGETS["tflite"].requires
