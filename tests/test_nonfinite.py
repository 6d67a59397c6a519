"""NaN/Inf outputs are errors everywhere a model runs, decided by one function (standalone.nonfinite_reason).

The model under test computes nothing: the tiny Xception's fp32 artifacts with the final bias set to NaN and
the manifest re-signed (tests/nan_model.py). No test here computes a top-1 from it: each asserts the failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_edgex
from nan_model import NAN_TARGETS, nan_artifacts

from edgex.errors import EXIT_SOME_FAILED, NonFiniteOutputError
from edgex.predict import standalone

NAN_LINE = "error: the model produced NaN/Inf outputs"


@pytest.fixture(scope="module")
def nan_models(tiny_model, tmp_path_factory) -> Path:
    return nan_artifacts(tiny_model, tmp_path_factory)


def some_images(images_dir: Path, count: int = 3) -> list[Path]:
    return sorted(p for p in images_dir.rglob("*") if p.suffix in (".png", ".jpg"))[:count]


# -- the one function ---------------------------------------------------------------------------------------


def test_nonfinite_reason_counts_nan_and_inf_and_passes_finite_outputs():
    assert standalone.nonfinite_reason(np.array([[1.0, -2.0], [3e38, 0.0]], np.float32)) is None
    assert standalone.nonfinite_reason(np.array([[1, 2]], np.int8)) is None
    reason = standalone.nonfinite_reason(np.array([[np.nan, 1.0], [np.inf, -np.inf]]))
    assert reason == "the model produced NaN/Inf outputs (1 NaN and 2 Inf of 4 values): not a prediction"


def test_classify_turns_only_the_nonfinite_image_into_an_error_line():
    outputs = {"good.png": [2.0, 1.0, 0.0], "bad.png": [np.nan, 0.0, 1.0], "inf.png": [np.inf, 0.0, 0.0]}
    rows = list(standalone.classify(list(outputs), lambda p: np.asarray(outputs[p], np.float32),
                                    lambda batch: batch, batch=3, k=2, classes=["a", "b", "c"], kind="logits"))
    good, bad, inf = rows
    assert good.error is None and good.top[0][0] == "a"
    for row in (bad, inf):
        assert row.top is None and standalone.format_line(row).startswith(f"{row.path}  {NAN_LINE}")


def test_run_suite_fails_the_row_of_a_runner_that_returns_nan(tmp_path, images_dir, nan_models):
    """The path every evaluation takes (eval, bench --eval-data, --remote and --ray hand their runner or
    preprocessor to run_suite): NaN outputs from any runner fail the row, and no accuracy is computed."""
    from edgex.bench.suite import run_suite
    from edgex.options import BenchSettings

    def remote_like_runner(model_file, runtime, precision, settings, inputs, outputs):
        np.save(outputs, np.full((len(np.load(inputs)), 4), np.nan, np.float32))
        return {"ok": True, "runtime": {"runtime": runtime}}

    report = run_suite([nan_models / "onnx-fp32"], BenchSettings(latency=False), eval_data=images_dir,
                       use_source=False, runner=remote_like_runner)
    (row,) = report["results"]
    assert row["status"] == "failed" and row["kind"] == "nonfinite_output"
    assert row["error"].startswith("the model produced NaN/Inf outputs (128 NaN of 128 values)")
    assert "on 32 of 32 evaluation images" in row["error"] and row["accuracy"] is None


# -- every command on the NaN model -------------------------------------------------------------------------


@pytest.mark.parametrize("target", NAN_TARGETS)
def test_predict_prints_the_error_line_and_exits_4(nan_models, images_dir, target, tmp_path):
    images = some_images(images_dir)
    done = run_edgex("predict", nan_models / f"{target}-fp32", *images, "--csv", tmp_path / "p.csv", "-q")
    assert done.returncode == EXIT_SOME_FAILED, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines == [f"{image}  {NAN_LINE} (4 NaN of 4 values): not a prediction" for image in images]
    assert " nan" not in done.stdout and "Traceback" not in done.stderr  # no `label nan` score
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    assert rows == [f"{image},,," for image in images]  # no label or probability for a NaN row


def test_load_predict_raises_the_typed_error(nan_models, images_dir):
    import edgex

    images = some_images(images_dir, 2)
    with edgex.load(nan_models / "tflite-fp32") as predictor, pytest.raises(NonFiniteOutputError) as caught:
        predictor.predict(images)
    error = caught.value
    assert error.exit_code == EXIT_SOME_FAILED and error.inputs == [str(p) for p in images]
    assert np.isnan(error.outputs).all() and "NaN/Inf" in error.one_line()


def test_eval_and_bench_fail_the_nan_rows_with_the_reason(nan_models, images_dir):
    for command in (["eval"], ["bench", "--min-runs", "2", "--min-seconds", "0", "--warmup", "0"]):
        done = run_edgex(*command, nan_models / "onnx-fp32", nan_models / "tflite-fp32", "--eval-data", images_dir,
                         "--threads", "1", "--json", "-q")
        assert done.returncode == EXIT_SOME_FAILED, done.stderr
        rows = json.loads(done.stdout)["results"]
        assert len(rows) == 2
        for row in rows:
            assert row["status"] == "failed" and row["kind"] == "nonfinite_output", row
            assert "NaN/Inf" in row["error"] and row["accuracy"] is None and row.get("vs_source") is None


def test_the_bundles_predict_py_prints_the_same_line(nan_models, images_dir, tmp_path):
    done = run_edgex("bundle", nan_models / "onnx-fp32", "--output", tmp_path / "bundle", "-q")
    assert done.returncode == 0, done.stderr
    images = some_images(images_dir, 2)
    ran = subprocess.run([sys.executable, str(tmp_path / "bundle" / "predict.py"), *map(str, images)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert ran.returncode == EXIT_SOME_FAILED, ran.stderr
    assert ran.stdout.strip().splitlines() == [f"{image}  {NAN_LINE} (4 NaN of 4 values): not a prediction"
                                               for image in images]
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize("target", NAN_TARGETS)
def test_check_names_the_nan_weight_of_the_artifact(nan_models, target):
    """`check` reads the weights (no run): the NaN bias is found before anything predicts."""
    from failure_checks import assert_clean_failure

    assert_clean_failure(run_edgex("check", nan_models / f"{target}-fp32"), 65, "NaN value(s)", f"model.{target}")
