"""The CLI: instant help, one-line errors with documented exit codes, no tracebacks."""

import subprocess
import sys

import pytest
from helpers import run_edgex


def test_help_is_instant_and_imports_no_framework():
    code = ("import sys; from edgex.cli import build_parser; build_parser().format_help(); "
            "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'openvino', 'onnx', 'nncf') "
            "if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_lists_exit_codes():
    done = run_edgex("convert", "--help")
    assert done.returncode == 0
    assert "--int8" in done.stdout and "exit codes" in done.stdout and "77" in done.stdout


def _assert_one_line_error(done, code, *needles):
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("edgex: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr  # status lines may precede it
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in errors[0]


def test_unknown_target_suggests_the_right_one(tiny_model):
    done = run_edgex("convert", "--model", tiny_model, "--target", "tflit")
    _assert_one_line_error(done, 2, "unknown target 'tflit'", "Did you mean 'tflite'")


def test_unknown_flag_suggests_the_right_one():
    done = run_edgex("convert", "--calib-dta", "x")
    assert done.returncode == 2 and "did you mean --calib-data" in done.stderr


def test_precision_a_target_lacks_is_a_usage_error(tiny_model):
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--dynamic")
    _assert_one_line_error(done, 2, "onnx has no dynamic precision")


def test_missing_model_is_66(tmp_path):
    done = run_edgex("convert", "--model", tmp_path / "nope.keras", "--output", tmp_path / "out")
    _assert_one_line_error(done, 66, "nope.keras", "does not exist")
    assert not (tmp_path / "out").exists()


def test_int8_without_calibration_images_is_66(tiny_model, tmp_path):
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--int8", "--output", tmp_path)
    _assert_one_line_error(done, 66, "int8 needs calibration images", "--calib-data")


def test_h5_needs_trust(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    done = run_edgex("convert", "--model", tmp_path / "m.h5")
    _assert_one_line_error(done, 77, "m.h5", "--trust-model")


def test_lambda_layer_is_refused_in_safe_mode(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lam.keras")
    done = run_edgex("convert", "--model", tmp_path / "lam.keras", "--output", tmp_path / "out")
    _assert_one_line_error(done, 77, "Lambda", "--trust-model")


@pytest.mark.parametrize("args", [("--input-size", "abc"), ("--mean", "1,2")])
def test_bad_values_are_usage_errors(args):
    assert run_edgex("convert", *args).returncode == 2


def test_a_flag_of_another_command_is_named_as_such():
    done = run_edgex("predict", "--model", "m", "photo.jpg")
    assert done.returncode == 2
    assert "(--model is a flag of edgex convert, port, not of edgex predict). See 'edgex predict --help'" in done.stderr
