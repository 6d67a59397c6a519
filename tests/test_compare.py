"""edgex compare: McNemar against known values, noise-aware latency verdicts, rules, pairing and exit codes.

Reports are built here synthetically (the schema bench writes), so every answer is known in advance."""

from __future__ import annotations

import copy
import json
import math

import pytest

from edgex.cli import main
from edgex.compare.gate import compare_reports
from edgex.compare.rules import parse_rule, parse_rules
from edgex.compare.stats import combined_noise, mcnemar_exact, relative_spread
from edgex.errors import EXIT_GATE, EXIT_USAGE, UsageError
from edgex.report.schema import SCHEMA, SCHEMA_VERSION

IMAGES = 372
CLASSES = ["a", "b", "c"]
MACHINE = {"cpu_model": "AMD EPYC 9R14", "machine": "x86_64", "isa": ["avx2", "avx512_vnni"], "cores_usable": 2,
           "os": "Linux", "python": "3.11", "numpy": "2.1", "libraries": {"onnxruntime": "1.20.1"}}


def make_report(p50: float = 20.0, rounds_spread: float = 0.06, wrong: int = 10, flip_to_wrong: int = 0,
                rows: tuple[str, ...] = ("onnx",), machine: dict | None = None) -> dict:
    """A report whose rows got `wrong` images wrong (the last ones), plus `flip_to_wrong` more, and whose
    rounds' p50s wander ±rounds_spread around p50."""
    labels = {f"{CLASSES[i % 3]}/img{i:03d}.jpg": i % 3 for i in range(IMAGES)}
    keys = list(labels)
    predictions = dict(labels)
    for key in keys[IMAGES - wrong - flip_to_wrong:]:
        predictions[key] = (labels[key] + 1) % 3
    correct = IMAGES - wrong - flip_to_wrong
    wander = [1 - rounds_spread, 1 + rounds_spread, 1, 1 - rounds_spread / 2, 1 + rounds_spread / 2]
    results = [{"name": f"{target}-int8", "target": target, "precision": "int8", "status": "ok",
                "path": f"/out/clothing_xception/{target}-int8", "threads": 2, "size_bytes": 23_000_000,
                "runtime": {"name": "onnxruntime", "version": "1.20.1", "threads": 2},
                "latency_ms": {"p50": p50, "p90": p50 * 1.1}, "round_p50_ms": [p50 * w for w in wander],
                "throughput_ips": 1000 / p50, "peak_rss_mb": 300.0,
                "accuracy": {"top1": correct / IMAGES, "n": IMAGES}, "predictions": dict(predictions)}
               for target in rows]
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "created": "2026-12-02T07:00:00+00:00",
            "edgex_version": "0.9", "machine": copy.deepcopy(machine or MACHINE), "settings": {"device": "cpu"},
            "eval_data": {"path": "test", "count": IMAGES, "classes": CLASSES, "sha256": "x", "labels": labels},
            "references": [], "results": results}


def write(tmp_path, name: str, report: dict):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def by_metric(result: dict, metric: str) -> dict:
    return next(c for c in result["changes"] if c["metric"] == metric)


# -- statistics ------------------------------------------------------------------------------------


def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 2**6)  # 0.03125
    assert mcnemar_exact(0, 6) == pytest.approx(0.03125)
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 0.0386
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 1) == pytest.approx(min(1.0, 2 * 5 / 16))  # 0.625
    assert mcnemar_exact(1, 0) == 1.0  # one flip can never be significant


def test_mcnemar_exact_agrees_with_scipy_and_survives_large_counts():
    stats = pytest.importorskip("scipy.stats")
    for b, c in ((6, 0), (13, 4), (40, 25), (100, 70), (2, 9)):
        assert mcnemar_exact(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
    assert 0 < mcnemar_exact(1500, 1300) < 1e-3  # 2**2800 overflows a float; exact integers do not


def test_round_spread_and_combined_noise():
    assert relative_spread([10.0, 10.0, 10.0]) == 0.0
    assert relative_spread([9.0, 11.0]) == pytest.approx(math.sqrt(2) / 10)
    assert relative_spread([10.0]) is None and relative_spread(None) is None
    assert combined_noise(0.03, 0.04) == pytest.approx(0.05)
    assert combined_noise(None, 0.04) is None


# -- verdicts --------------------------------------------------------------------------------------


def test_same_predictions_and_two_percent_on_a_noisy_machine_is_within_noise(tmp_path, capsys):
    base, new = write(tmp_path, "base", make_report(p50=20.0)), write(tmp_path, "new", make_report(p50=20.4))
    code = main(["compare", str(base), str(new), "--fail-on", "top1-drop>0.5pp", "--fail-on", "p50>+1%"])
    assert code == 0
    result = json.loads((new / "compare.json").read_text())
    p50 = by_metric(result, "p50")
    assert p50["verdict"] == "within noise" and p50["change"] == pytest.approx(0.02)
    assert by_metric(result, "top-1")["verdict"] == "within noise"
    assert by_metric(result, "top-1")["flips"] == {"to_wrong": 0, "to_right": 0, "images": IMAGES, "p_value": 1.0}
    assert result["fired"] == [] and result["environment"] == []
    out = capsys.readouterr().out
    assert "| row | metric | baseline | new | change | verdict | why |" in out and "within noise" in out
    html = (new / "compare.html").read_text()
    assert (new / "compare.md").is_file() and '<svg id="changes"' in html
    assert html.count('class="noise"') == 4  # a noise band behind p50, throughput, peak RSS and size



def test_a_large_latency_change_on_a_quiet_machine_is_worse(tmp_path):
    result = compare_reports(make_report(p50=20.0, rounds_spread=0.005), make_report(p50=26.0, rounds_spread=0.005))
    assert by_metric(result, "p50")["verdict"] == "worse"
    assert by_metric(result, "throughput")["verdict"] == "worse"
    faster = compare_reports(make_report(p50=20.0, rounds_spread=0.005), make_report(p50=14.0, rounds_spread=0.005))
    assert by_metric(faster, "p50")["verdict"] == "better"


def test_the_same_change_is_noise_where_the_rounds_wander(tmp_path):
    """+12% is a regression where rounds agree, noise where they wander ±15%."""
    quiet = compare_reports(make_report(20.0, 0.005), make_report(22.4, 0.005), parse_rules(["p50>+10%"]))
    noisy = compare_reports(make_report(20.0, 0.15), make_report(22.4, 0.15), parse_rules(["p50>+10%"]))
    assert by_metric(quiet, "p50")["verdict"] == "worse" and quiet["gate"] == "failed"
    assert by_metric(noisy, "p50")["verdict"] == "within noise" and noisy["gate"] == "passed"


def test_six_of_372_images_flipping_to_wrong_is_worse_and_fails_the_gate(tmp_path, capsys):
    base = write(tmp_path, "base", make_report(wrong=10))
    new = write(tmp_path, "new", make_report(wrong=10, flip_to_wrong=6))
    code = main(["compare", str(base / "report.json"), str(new), "--fail-on", "top1-drop>0.5pp",
                 "--output", str(tmp_path / "cmp")])
    assert code == EXIT_GATE
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    top1 = by_metric(result, "top-1")
    assert top1["verdict"] == "worse"
    assert top1["flips"]["to_wrong"] == 6 and top1["flips"]["to_right"] == 0
    assert top1["flips"]["p_value"] == pytest.approx(0.03125)
    assert top1["change"] == pytest.approx(-600 / IMAGES)  # -1.61 pp
    out = capsys.readouterr().out
    assert "p=0.0312" in out and "gate failed" in out and "top1-drop>0.5pp" in out


def test_two_flips_cross_the_threshold_but_are_noise(tmp_path):
    """2 of 372 (0.54 pp) passes 0.5 pp, yet McNemar p=0.5: the gate does not fail on noise."""
    result = compare_reports(make_report(wrong=10), make_report(wrong=10, flip_to_wrong=2),
                             parse_rules(["top1-drop>0.5pp"]))
    assert by_metric(result, "top-1")["verdict"] == "within noise"
    assert by_metric(result, "top-1")["flips"]["p_value"] == pytest.approx(0.5)
    assert result["fired"] == []


def test_new_and_gone_rows_are_reported_and_gone_can_fail(tmp_path, capsys):
    base = write(tmp_path, "base", make_report(rows=("onnx", "openvino")))
    new = write(tmp_path, "new", make_report(rows=("onnx", "tflite")))
    assert main(["compare", str(base), str(new)]) == 0
    result = json.loads((new / "compare.json").read_text())
    assert result["gone_rows"] == ["clothing_xception openvino-int8 (cpu, 2 threads)"]
    assert result["new_rows"] == ["clothing_xception tflite-int8 (cpu, 2 threads)"]
    out = capsys.readouterr().out
    assert "gone rows (in the baseline only): clothing_xception openvino-int8" in out
    assert "new rows (no baseline): clothing_xception tflite-int8" in out
    assert main(["compare", str(base), str(new), "--fail-on", "gone", "-q"]) == EXIT_GATE


def test_rows_with_other_threads_are_not_paired():
    new = make_report()
    new["results"][0]["threads"] = 1
    result = compare_reports(make_report(), new)
    assert result["changes"] == [] and len(result["gone_rows"]) == 1 and len(result["new_rows"]) == 1


def test_a_baseline_from_another_cpu_or_runtime_is_named(tmp_path, capsys):
    arm = {**MACHINE, "cpu_model": "Cortex-A72", "machine": "aarch64", "isa": ["asimd"], "cores_usable": 4}
    base = make_report(machine=arm)
    base["results"][0]["runtime"]["version"] = "1.19.0"
    base["machine"]["libraries"]["onnxruntime"] = "1.19.0"
    result = compare_reports(base, make_report())
    env = "\n".join(result["environment"])
    assert "CPU differs: baseline Cortex-A72, new AMD EPYC 9R14" in env
    assert "ISA class differs: baseline arm64, new x86-vnni" in env
    assert "runtime onnxruntime differs: baseline 1.19.0, new 1.20.1" in env
    a, b = write(tmp_path, "a", base), write(tmp_path, "b", make_report())
    main(["compare", str(a), str(b)])
    assert "Not measured alike" in capsys.readouterr().out


def test_reports_without_predictions_or_rounds_say_so():
    base = make_report()
    del base["results"][0]["predictions"], base["results"][0]["round_p50_ms"]
    result = compare_reports(base, make_report())
    assert by_metric(result, "top-1")["verdict"] == "no verdict"
    assert "no per-image predictions in the baseline report" in by_metric(result, "top-1")["detail"]
    assert "no rounds in the baseline report" in by_metric(result, "p50")["detail"]


def test_a_row_that_failed_in_the_new_run_is_worse():
    new = make_report()
    new["results"][0].update(status="failed", error="onnxruntime could not load it")
    result = compare_reports(make_report(), new, parse_rules(["gone"]))
    assert by_metric(result, "status")["verdict"] == "worse" and result["gate"] == "failed"


# -- rules ---------------------------------------------------------------------------------------


def test_rules_parse_into_limits():
    assert parse_rule("top1-drop>0.5pp").limit == 0.5
    assert parse_rule("p50>+10%").limit == pytest.approx(0.10)
    assert parse_rule("size>5%").limit == pytest.approx(0.05)
    assert parse_rule("throughput<-10%").name == "throughput"
    assert [r.text for r in parse_rules(["p50>+10%,size>+5%", "gone"])] == ["p50>+10%", "size>+5%", "gone"]


@pytest.mark.parametrize("text", ["p50>10ms", "p50<-10%", "latency>+10%", "top1-drop>0.5%", "top1-drop<0.5pp",
                                  "throughput>+10%", "p50>+ten%", "size>-5%", "p50>+10%,", ""])
def test_bad_rules_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_rules([text])


def test_a_bad_rule_exits_2_with_one_line_before_reading_reports(tmp_path, capsys):
    code = main(["compare", str(tmp_path / "missing"), str(tmp_path / "missing2"), "--fail-on", "p50>10ms"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad --fail-on rule 'p50>10ms'" in err


def test_an_unquoted_rule_that_the_shell_cut_says_to_quote_it():
    with pytest.raises(UsageError) as caught:
        parse_rule("top1-drop")  # what argparse sees of an unquoted --fail-on top1-drop>0.5pp
    assert "Quote the rule" in caught.value.one_line() and "'top1-drop>0.5pp'" in caught.value.one_line()
