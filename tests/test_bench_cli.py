"""`edgex bench`: a clean child per artifact, accuracy with the manifest's preprocessing, failures recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import CLASSES, run_edgex
from test_bench_fixtures import tiny_int8_artifacts, truncated_copy


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory):
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def bench_run(tiny_artifacts, images_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    broken = truncated_copy(tiny_artifacts / "onnx-int8", work / "broken" / "onnx-int8")
    escaping = _manifest_pointing_outside(tiny_artifacts / "onnx-int8", work / "crafted" / "onnx-int8")
    report_dir = work / "report"
    # the two artifacts by name: the shared folder may hold other targets that other test files converted
    done = run_edgex("bench", tiny_artifacts / "onnx-int8", tiny_artifacts / "tflite-int8", broken, escaping,
                     "--eval-data", images_dir, "--min-runs", "3",
                     "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--output", report_dir, "-q")
    return done, report_dir


def _manifest_pointing_outside(folder: Path, destination: Path) -> Path:
    """A copy whose manifest names a model file outside the artifact folder (a crafted download)."""
    import shutil

    shutil.copytree(folder, destination)
    manifest = json.loads((destination / "manifest.json").read_text())
    manifest["model_file"] = "../../outside.onnx"
    (destination / "manifest.json").write_text(json.dumps(manifest))
    return destination


def _independent_top1(folder, images_dir) -> float:
    """In-process evaluation through the runtime adapters and edgex.evaluation.labelled: a second code path."""
    from edgex.artifacts.publish import read_manifest
    from edgex.evaluation.labelled import labelled_folder, predict, preprocess_all, top1
    from edgex.preprocess import Preprocess
    from edgex.runtimes import open_runtime

    manifest = read_manifest(folder)
    files, labels, _ = labelled_folder(images_dir, manifest["classes"])
    inputs = preprocess_all(files, Preprocess.from_dict(manifest["preprocess"]))
    runtime = open_runtime({"onnx": "onnxruntime", "tflite": "litert"}[manifest["target"]],
                           folder / manifest["model_file"], manifest["precision"])
    return top1(predict(runtime.run, inputs), labels)


def test_failed_artifact_is_recorded_and_the_rest_complete(bench_run):
    done, report_dir = bench_run
    assert done.returncode == 4, done.stderr  # some artifacts failed; the report was still written
    report = json.loads((report_dir / "report.json").read_text())
    by_status = {}
    for row in report["results"]:
        by_status.setdefault(row["status"], []).append(row)
    assert len(by_status["ok"]) == 2 and len(by_status["failed"]) == 2
    failed, crafted = sorted(by_status["failed"], key=lambda row: "outside" in row["error"])
    assert crafted["kind"] == "bad_input" and "points outside the artifact folder" in crafted["error"]
    assert failed["kind"] == "load_failed" and "model.onnx" in failed["error"] and failed["latency_ms"] is None
    assert "FAILED (load_failed)" in (report_dir / "report.md").read_text()


def test_report_has_latency_percentiles_runs_and_fingerprint(bench_run):
    _, report_dir = bench_run
    report = json.loads((report_dir / "report.json").read_text())
    assert report["schema"] == "edgex-report" and report["schema_version"] == 1
    assert report["settings"]["min_runs"] == 3 and report["settings"]["min_seconds"] == 0
    machine = report["machine"]
    assert machine["cpu_model"] and machine["cores_logical"] >= 1 and "isa" in machine and machine["os"]
    assert machine["libraries"]["onnxruntime"] and machine["runtimes"]["openvino"]["available"]
    for row in (r for r in report["results"] if r["status"] == "ok"):
        assert row["runs"] >= 3 and row["seconds"] > 0 and row["batch"] == 1
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p90"]
        assert row["size_bytes"] > 0 and row["peak_rss_mb"] > 0 and row["load_ms"] > 0
        assert row["runtime"]["threads"] == 1
    assert sum(r["pareto"] for r in report["results"]) >= 1
    html = (report_dir / "report.html").read_text()
    assert "<svg" in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained


def test_accuracy_equals_independent_evaluation(bench_run, tiny_artifacts, images_dir):
    _, report_dir = bench_run
    report = json.loads((report_dir / "report.json").read_text())
    for row in (r for r in report["results"] if r["status"] == "ok"):
        accuracy = row["accuracy"]
        assert accuracy["n"] == 32 and list(accuracy["per_class"]) == CLASSES
        assert accuracy["top1"] == pytest.approx(_independent_top1(Path(row["path"]), images_dir),
                                                 abs=1 / 32 + 1e-9)  # within one image
        assert "top5" not in accuracy  # only 4 classes
        matrix = accuracy["confusion"]["matrix"]
        assert sum(map(sum, matrix)) == 32 and sum(matrix[i][i] for i in range(4)) == accuracy["correct"]
        vs = row["vs_source"]
        assert 0.0 <= vs["agreement"] <= 1.0 and vs["ci95_pp"][0] <= vs["drop_pp"] <= vs["ci95_pp"][1]
    (reference,) = report["references"]
    assert reference["name"] == "source-fp32" and reference["accuracy"]["n"] == 32


def test_missing_artifact_path_is_one_line_66(tmp_path):
    done = run_edgex("bench", tmp_path / "nope")
    assert done.returncode == 66 and done.stderr.strip().startswith("edgex: error:") and "nope" in done.stderr
    assert "Traceback" not in done.stderr


def test_nonpositive_runs_is_a_usage_error(tiny_artifacts):
    done = run_edgex("bench", tiny_artifacts, "--min-runs", "0")
    assert done.returncode == 2 and "--min-runs must be at least 1" in done.stderr


def test_settings_no_run_can_finish_with_are_usage_errors_before_timing():
    from edgex.errors import UsageError
    from edgex.options import BenchSettings

    for settings, needle in ((BenchSettings(min_seconds=60, timeout_s=30), "not below the runner's timeout"),
                             (BenchSettings(batch=10**9), "batch (--batch) is 1000000000"),
                             (BenchSettings(min_seconds=float("nan")), "min_seconds (--min-seconds) is nan")):
        with pytest.raises(UsageError, match=re.escape(needle)):
            settings.check()
    BenchSettings().check()
    BenchSettings(min_seconds=60, timeout_s=30, latency=False).check()  # eval: the runner times one run only
