"""The parity gate catches broken int8 artifacts: exit 3, a clear line, nothing published."""

import json

import numpy as np
from helpers import leftovers, run_edgex

from edgex.conversion.parity import compare, failures
from edgex.options import DEFAULT_THRESHOLDS


def test_compare_and_failures():
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    metrics = compare(reference, reference[:, ::-1])
    assert metrics["agreement"] == 0.0 and metrics["agree_count"] == 0 and metrics["n"] == 3
    assert failures(metrics, DEFAULT_THRESHOLDS["int8"])
    assert not failures(compare(reference, reference), DEFAULT_THRESHOLDS["fp32"])


def test_nan_output_fails_the_gate():
    reference = np.ones((2, 3))
    metrics = compare(reference, np.full((2, 3), np.nan))
    assert failures(metrics, DEFAULT_THRESHOLDS["int8"])


def test_overflow_with_the_right_argmax_is_named_as_overflow():
    """+-inf logits would keep the argmax: the gate fails on the NaN/Inf itself, with that one reason, and
    computes no statistics from them (no RuntimeWarning from inf - inf either)."""
    import warnings

    reference = np.array([[5.0, -5.0], [-5.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = compare(reference, np.array([[np.inf, -np.inf], [-np.inf, np.inf]]))
    assert metrics["nonfinite"] == 4 and metrics["agree_count"] == 0
    assert failures(metrics, DEFAULT_THRESHOLDS["int8"]) == [
        "the artifact produced NaN/Inf outputs (4 value(s)): not a prediction"]


def test_a_nan_reference_fails_the_gate_with_its_own_reason():
    metrics = compare(np.full((2, 3), np.nan), np.ones((2, 3)))
    assert metrics["nonfinite_reference"] == 6 and metrics["nonfinite"] == 0
    assert failures(metrics, DEFAULT_THRESHOLDS["fp32"]) == [
        "the source model produced NaN/Inf outputs (6 value(s)): no reference to compare with"]


def test_calibrating_on_constant_images_fails_with_exit_3(tiny_model, images_dir, constant_images_dir,
                                                          tmp_path):
    # Parity images come from a different folder than calibration: calibrate on flat gray,
    # check on real pictures. The ranges collapse, so int8 must be caught.
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--int8", "--calib-data",
                     constant_images_dir, "--parity-data", images_dir, "--output", tmp_path, "--json")
    assert done.returncode == 3, done.stderr
    assert "parity gate failed for onnx-int8" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["ok"] is False
    assert not (tmp_path / "tiny_xception" / "onnx-int8").exists()
    assert leftovers(tmp_path) == []
