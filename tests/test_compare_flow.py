"""The gate wired into the flow: bench keeps rounds and per-image predictions, bench --baseline/--history,
report --history draws the trend, and edgex run's compare step is checked before any conversion."""

from __future__ import annotations

import json

import pytest
from helpers import run_edgex
from test_bench_fixtures import tiny_int8_artifacts
from test_compare import make_report, write

from edgex.bench.runner import round_p50s
from edgex.cli import main
from edgex.errors import EXIT_NO_INPUT, EXIT_USAGE
from edgex.report.history import append_history, read_history


def test_round_p50s_are_the_medians_of_consecutive_slices():
    times = [10.0] * 10 + [20.0] * 10 + [30.0] * 10 + [40.0] * 10 + [50.0] * 10
    assert round_p50s(times) == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert round_p50s([1.0, 2.0, 3.0]) == [2.0]  # too few runs for rounds: one
    assert len(round_p50s([1.0] * 12)) == 2


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory):
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


def test_bench_twice_with_baseline_and_history_then_the_trend(tiny_artifacts, images_dir, tmp_path):
    """Two real bench runs of the same artifact: predictions identical, so top-1 is within noise and exit 0."""
    common = ["--eval-data", images_dir, "--min-runs", "10", "--min-seconds", "0", "--warmup", "1",
              "--threads", "1", "--no-source", "-q", "--history", tmp_path / "history.jsonl"]
    first = run_edgex("bench", tiny_artifacts / "onnx-int8", *common, "--output", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    row = report["results"][0]
    assert len(row["round_p50_ms"]) == 2 and all(v > 0 for v in row["round_p50_ms"])
    labels = report["eval_data"]["labels"]
    assert set(row["predictions"]) == set(labels) and len(labels) == report["eval_data"]["count"]
    correct = sum(row["predictions"][k] == labels[k] for k in labels)
    assert correct == row["accuracy"]["correct"]

    second = run_edgex("bench", tiny_artifacts / "onnx-int8", *common, "--output", tmp_path / "b",
                       "--baseline", tmp_path / "a", "--fail-on", "top1-drop>0.5pp")
    assert second.returncode == 0, second.stderr
    result = json.loads((tmp_path / "b" / "compare.json").read_text())
    top1 = next(c for c in result["changes"] if c["metric"] == "top-1")
    assert top1["verdict"] == "within noise" and top1["flips"]["to_wrong"] == top1["flips"]["to_right"] == 0
    assert result["new_rows"] == result["gone_rows"] == [] and result["environment"] == []

    history = read_history(tmp_path / "history.jsonl")
    assert len(history) == 2 and history[0]["rows"][0]["target"] == "onnx"
    assert history[1]["rows"][0]["top1"] == row["accuracy"]["top1"]
    assert main(["report", str(tmp_path / "b" / "report.json"), "--history", str(tmp_path / "history.jsonl"),
                 "--output", str(tmp_path / "c")]) == 0
    html = (tmp_path / "c" / "report.html").read_text()
    assert "Trend over 2 runs" in html and 'id="trend-top1"' in html and 'id="trend-p50"' in html


def test_history_appends_one_line_per_run_and_bad_lines_are_named(tmp_path):
    path = tmp_path / "h.jsonl"
    append_history(make_report(p50=20.0), path)
    append_history(make_report(p50=21.0), path)
    entries = read_history(path)
    assert [e["rows"][0]["p50_ms"] for e in entries] == [20.0, 21.0]
    assert entries[0]["versions"]["onnxruntime"] == "1.20.1" and "AMD EPYC" in entries[0]["device"]
    path.write_text(path.read_text() + "{not json\n")
    assert main(["report", str(write(tmp_path, "r", make_report()) / "report.json"), "--history", str(path),
                 "--output", str(tmp_path / "o")]) == 65


def test_bench_refuses_fail_on_without_baseline_before_timing(tmp_path, capsys):
    assert main(["bench", str(tmp_path), "--fail-on", "p50>+10%"]) == EXIT_USAGE
    assert "--fail-on needs a --baseline" in capsys.readouterr().err
    assert main(["bench", str(tmp_path), "--baseline", str(tmp_path / "none"), "--fail-on", "p50>10"]) == EXIT_USAGE


def _pipeline(tmp_path, compare: str) -> str:
    (tmp_path / "m.keras").write_bytes(b"")
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"model: m.keras\ntargets: [onnx]\nprecisions: [int8]\n{compare}\n")
    return str(config)


def test_pipeline_compare_step_is_checked_before_converting(tmp_path, capsys):
    write(tmp_path, "baseline", make_report())
    ok = _pipeline(tmp_path, "compare: {baseline: baseline, fail_on: [top1-drop>0.5pp, p50>+10%], noise_k: 4}")
    assert main(["run", ok, "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["compare"]["baseline"] == str(tmp_path / "baseline") and plan["compare"]["noise_k"] == 4
    assert main(["run", _pipeline(tmp_path, "compare: {baseline: baseline, fail_on: p50>10ms}"), "--dry-run"]) \
        == EXIT_USAGE
    assert main(["run", _pipeline(tmp_path, "compare: {baseline: nowhere}"), "--dry-run"]) == EXIT_NO_INPUT
    assert main(["run", _pipeline(tmp_path, "compare: {fail_on: gone}"), "--dry-run"]) == EXIT_USAGE
    assert main(["run", _pipeline(tmp_path, "compare: {baseline: baseline, treshold: 1}"), "--dry-run"]) == EXIT_USAGE


def test_pipeline_compare_step_writes_compare_and_gates(tmp_path):
    from edgex.run.config import plan_from_config
    from edgex.run.execute import compare_step

    write(tmp_path, "baseline", make_report(wrong=10))
    plan = plan_from_config(_pipeline(tmp_path, "compare: {baseline: baseline/report.json, fail_on: top1-drop>1pp}"))
    plan.report = tmp_path / "out"
    result = compare_step(plan, make_report(wrong=10, flip_to_wrong=8))
    assert result["gate"] == "failed" and (tmp_path / "out" / "compare.html").is_file()
    fired = result["fired"][0]
    assert fired.startswith("top1-drop>1pp: clothing_xception onnx-int8") and "-2.15 pp" in fired


def test_skip_bad_images_keys_predictions_like_the_whole_set(tmp_path):
    """--skip-bad-images evaluates a CSV of absolute paths; the report's keys must still be the whole set's."""
    import numpy as np

    from edgex.evaluation.dataset import LabelledImages
    from edgex.scale.suite import _account

    files = [tmp_path / "a" / "1.jpg", tmp_path / "a" / "2.jpg", tmp_path / "b" / "3.jpg"]
    whole = LabelledImages(files, np.array([0, 0, 1]), ["a", "b"], tmp_path, "folders")
    report = {"results": [{"name": "onnx-int8", "accuracy": {"n": 2},
                           "predictions": {files[0].resolve().as_posix(): 0, files[2].resolve().as_posix(): 0}}]}
    _account(report, whole, [{"file": str(files[1]), "reason": "cannot decode image"}])
    assert report["results"][0]["predictions"] == {"a/1.jpg": 0, "b/3.jpg": 0}
    assert report["eval_data"]["labels"] == {"a/1.jpg": 0, "a/2.jpg": 0, "b/3.jpg": 1}
