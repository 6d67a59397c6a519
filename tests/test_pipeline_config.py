"""`edgex run pipeline.yaml`: strict validation with suggestions, --dry-run plan, and one full tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import REPO, run_edgex


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


def _one_line_error(done, code: int) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgex: error:") and "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.parametrize(("text", "needles"), [
    ("model: m.keras\ncalibraton: {data: x}\n", ["unknown key 'calibraton'", "Did you mean 'calibration'?"]),
    ("model: m.keras\nbench: {min_run: 3}\n", ["unknown key 'bench.min_run'", "Did you mean 'min_runs'?"]),
    ("model: m.keras\nbench: {threads: two}\n", ["'bench.threads' must be an integer"]),
    ("model: m.keras\nprecisions: [int9]\n", ["unknown precision 'int9'", "Did you mean 'int8'?"]),
    ("model: m.keras\ntargets: [tflit]\n", ["unknown target 'tflit'", "Did you mean 'tflite'?"]),
    ("targets: [onnx]\n", ["names no model"]),
    # found by the fuzz campaign (yaml:138): a run that would time every artifact out after 30 minutes
    ("model: m.keras\nbench: {min_seconds: 4294967297}\n",
     ["bench setting min_seconds (--min-seconds) is 4294967297", "from 0 to 86400"]),
    ("model: m.keras\nbench: {batch: 4294967297}\n", ["bench setting batch (--batch) is 4294967297", "1 to 1024"]),
])
def test_config_errors_name_the_key_and_suggest_a_fix(tmp_path, text, needles):
    line = _one_line_error(run_edgex("run", _write(tmp_path, text), "--dry-run"), 2)
    for needle in needles:
        assert needle in line
    if "unknown key" in line:
        assert str(tmp_path / "pipeline.yaml") in line


def test_invalid_yaml_is_65(tmp_path):
    line = _one_line_error(run_edgex("run", _write(tmp_path, "model: [unclosed\n"), "--dry-run"), 65)
    assert "not valid YAML" in line


def test_dry_run_resolves_paths_against_the_config_and_skips_impossible_pairs(tmp_path):
    config = _write(tmp_path, "model: models/m.keras\ntargets: [onnx, tflite]\nprecisions: [fp16, int8]\n"
                    "calibration: {data: calib, size: 50}\nevaluation: {data: test}\nbench: {min_runs: 3}\n")
    done = run_edgex("run", config, "--dry-run")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["model"] == str(tmp_path / "models" / "m.keras")
    options = plan["convert_options"]
    assert options["calib_data"] == str(tmp_path / "calib") and options["calibration"] == {"size": 50}
    assert [Path(a).name for a in plan["artifacts"]] == ["tflite-fp16", "onnx-int8", "tflite-int8"]
    assert plan["skipped"] == ["onnx-fp16: onnx has no fp16 precision"]
    assert plan["evaluation"]["data"] == str(tmp_path / "test") and plan["bench"] == {"min_runs": 3}
    assert not (tmp_path / "edgex-out").exists()  # a dry run writes nothing


def test_example_clothing_config_is_valid():
    done = run_edgex("run", REPO / "benchmarks" / "clothing_pipeline.yaml", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["artifacts"]) == 6


def test_pipeline_converts_benches_evaluates_and_reports(tiny_model, images_dir, tmp_path):
    config = _write(tmp_path, f"model: {tiny_model}\ntargets: [onnx]\nprecisions: [int8]\n"
                    f"calibration: {{data: {images_dir}, size: 24}}\nevaluation: {{data: {images_dir}}}\n"
                    "bench: {min_runs: 3, min_seconds: 0, warmup: 1, threads: 1}\noutput: out\n")
    done = run_edgex("run", config, "-q")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    (row,) = report["results"]
    assert row["name"] == "onnx-int8" and row["status"] == "ok" and row["runs"] >= 3
    assert row["accuracy"]["n"] == 32 and row["latency_ms"]["p90"] >= row["latency_ms"]["p50"]
    assert report["pipeline"]["config"] == str(config)
    assert (tmp_path / "out" / "tiny_xception" / "onnx-int8" / "manifest.json").is_file()
    assert {p.name for p in (tmp_path / "out" / "report").iterdir()} == {"report.json", "report.md", "report.html"}
