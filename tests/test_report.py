"""Reports: Pareto front, Markdown table, comparison of two runs, schema check, and the HTML in a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from helpers import run_edgex

from edgex.options import BenchSettings
from edgex.report.html import render_html
from edgex.report.markdown import compare_markdown, render_markdown
from edgex.report.schema import build_report, pareto_names
from edgex.report.write import write_reports


def _row(name: str, p50: float | None, top1: float | None, size: int = 20_000_000, status: str = "ok") -> dict:
    target, precision = name.split("-")
    ok = status == "ok"
    return {"name": name, "target": target, "precision": precision, "status": status, "kind": None if ok else
            "load_failed", "error": None if ok else "cannot load model.onnx: truncated", "size_bytes": size,
            "runtime": {"name": "onnxruntime", "version": "1", "providers": ["CPUExecutionProvider"],
                        "precision_ran": precision, "threads": 2} if ok else None,
            "latency_ms": {"p50": p50, "p90": p50 * 1.2, "mean": p50, "std": 1.0, "min": p50 * 0.9, "p99": p50 * 1.3,
                           "max": p50 * 1.4} if ok else None,
            "runs": 50 if ok else None, "seconds": 10.2 if ok else None, "peak_rss_mb": 300.0 if ok else None,
            "accuracy": {"top1": top1, "n": 372} if ok else None,
            "vs_source": {"agreement": 0.97, "drop_pp": 0.27, "ci95_pp": [-0.5, 1.1], "significant": False}
            if ok else None}


def _report(rows: list[dict] | None = None) -> dict:
    rows = rows or [_row("onnx-fp32", 120.0, 0.9086, 83_000_000), _row("onnx-int8", 60.0, 0.9059),
                    _row("tflite-int8", 45.0, 0.9032), _row("openvino-int8", 70.0, 0.9000),
                    _row("tflite-fp32", None, None, status="failed")]
    data = {"path": "test/", "count": 372, "classes": list("abcdefghij")}
    refs = [{"name": "source-fp32", "accuracy": {"top1": 0.9086}}]
    return build_report(rows, BenchSettings(min_runs=50, min_seconds=10), data, refs)


def test_pareto_front_keeps_only_undominated_artifacts():
    rows = [_row("a-x", 10, 0.80), _row("b-x", 20, 0.90), _row("c-x", 30, 0.85), _row("d-x", 40, 0.95),
            _row("e-x", None, None, status="failed")]
    assert pareto_names(rows) == {"a-x", "b-x", "d-x"}


def test_markdown_has_one_row_per_artifact_with_failure_reason():
    text = render_markdown(_report())
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 1 + 5  # header, reference, five artifacts
    assert any("FAILED (load_failed): cannot load model.onnx: truncated" in line for line in table)
    assert any(line.startswith("| tflite-int8 ★") for line in table)  # fastest: on the front
    assert not any(line.startswith("| openvino-int8 ★") for line in table)  # slower and worse than onnx-int8
    assert "-0.27 pp [-1.10, +0.50] (noise)" in text


def test_compare_two_reports_side_by_side(tmp_path):
    laptop, pi = _report(), _report([_row("onnx-int8", 240.0, 0.9059), _row("tflite-int8", 150.0, 0.9032)])
    for name, report in (("laptop", laptop), ("pi", pi)):
        write_reports(report, tmp_path / name)
    done = run_edgex("report", tmp_path / "laptop" / "report.json", tmp_path / "pi" / "report.json",
                     "--output", tmp_path / "cmp")
    assert done.returncode == 0, done.stderr
    assert "p50 ms laptop" in done.stdout and "p50 ms pi" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("| tflite-int8 "))
    assert "3.33x" in line  # 150 / 45
    assert "absent" in next(x for x in done.stdout.splitlines() if x.startswith("| openvino-int8 "))
    assert (tmp_path / "cmp" / "compare.md").read_text().strip() == done.stdout.strip()


def test_report_of_another_schema_version_is_refused(tmp_path):
    report = _report()
    report["schema_version"] = 99
    (tmp_path / "r.json").write_text(json.dumps(report))
    done = run_edgex("report", tmp_path / "r.json")
    assert done.returncode == 65 and "schema version 99" in done.stderr


def _browser() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_browser() is None, reason="headless Chromium is not installed (make setup installs Debian's "
                    "chromium package when run as root)")
def test_html_renders_scatter_and_table_in_headless_chromium(tmp_path):
    from PIL import Image

    html = render_html(_report())
    assert "<script" not in html and 'class="pareto"' in html
    (tmp_path / "report.html").write_text(html)
    shot = tmp_path / "shot.png"
    subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,1300", f"--screenshot={shot}", (tmp_path / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)

    def count(colour: str, region=(slice(None), slice(None))) -> int:
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        return int(np.sum(np.abs(pixels[region] - rgb).sum(axis=2) < 30))

    plot = (slice(150, 720), slice(0, 900))  # the scatter sits under the title, above the table
    assert count("#1f77b4", plot) > 100  # onnx points and whiskers
    assert count("#e6740b", plot) > 100  # tflite
    assert count("#d62728", plot) > 50  # the Pareto front
    assert count("#fde8e8") > 1000  # the failed row of the table, shaded


def _cells(text: str, name: str) -> dict[str, str]:
    """One artifact's row of a Markdown table, by column name."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(line for line in lines if line.startswith(f"| {name} "))
    return dict(zip(header, (c.strip() for c in row.strip("|").split("|")), strict=True))


def test_every_row_says_how_it_was_timed(tmp_path):
    """Latencies at different thread counts do not compare: report.json, .md and .html show each row's threads."""
    rows = [_row("onnx-int8", 60.0, 0.9059), _row("tflite-int8", 45.0, 0.9032)]
    rows[1]["runtime"]["threads"] = 4
    report = _report(rows)
    assert [r["threads"] for r in report["results"]] == [2, 4]
    paths = write_reports(report, tmp_path)
    assert [r["threads"] for r in json.loads(paths["json"].read_text())["results"]] == [2, 4]
    text = paths["md"].read_text()
    assert _cells(text, "onnx-int8")["threads"] == "2" and _cells(text, "tflite-int8")["threads"] == "4"
    assert "threads all usable cores (2, 4)" in text  # no --threads: each machine's own
    html = paths["html"].read_text()
    assert "<th>threads</th>" in html and "<td>4</td>" in html
    pinned = build_report([_row("onnx-int8", 60.0, 0.9)], BenchSettings(threads=1), None, [])
    assert "threads 1," in render_markdown(pinned)


def test_comparison_shows_both_thread_counts(tmp_path):
    laptop = _report([_row("tflite-int8", 20.0, 0.9)])
    pi_row = _row("tflite-int8", 80.0, 0.9)
    pi_row["runtime"]["threads"] = 4
    text = compare_markdown(laptop, _report([pi_row]), "laptop", "pi")
    cells = _cells(text, "tflite-int8")
    assert (cells["threads laptop"], cells["threads pi"], cells["pi/laptop p50"]) == ("2", "4", "4.00x")
