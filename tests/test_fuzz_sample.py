"""A seeded sample of the fuzz campaign (benchmarks/fuzz.py) on the tiny model's files: the same harness and
the same bar (0 signals, 0 exit 1, 0 tracebacks, 0 hangs, 0 NaN shown), about 30 mutants through the CLI's
own main() in one worker process. The full campaign (500 mutants per format and command) is not run here."""

from __future__ import annotations

import importlib.util
import sys

from helpers import REPO
from nan_model import tiny_fp32_artifacts

SAMPLE = {"onnx": ("predict",), "tflite": ("predict",), "manifest": ("predict",)}
CHECKED = 3  # the first 3 mutants of onnx and tflite also through check (a parse probe child each)
PER_FORMAT = 8  # 3 formats x 8 mutants = 24 through predict, and 6 through check: 30 runs


def load_fuzz():
    spec = importlib.util.spec_from_file_location("edgex_fuzz", REPO / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_a_seeded_fuzz_sample_meets_the_bar(tiny_model, images_dir, tmp_path_factory):
    fuzz = load_fuzz()
    artifacts = tiny_fp32_artifacts(tiny_model, tmp_path_factory)
    corpus = {"onnx": artifacts / "onnx-fp32", "tflite": artifacts / "tflite-fp32",
              "manifest": artifacts / "onnx-fp32", "images": images_dir}
    cells = fuzz.campaign(corpus, list(SAMPLE), PER_FORMAT, seed=26, limit=300, rss_limit_mb=4096, minutes=None,
                          recycle=100, commands=SAMPLE, log=lambda *a, **k: None)
    cells.update(fuzz.campaign(corpus, ["onnx", "tflite"], CHECKED, seed=26, limit=300, rss_limit_mb=4096,
                               minutes=None, recycle=100, commands=["check"], log=lambda *a, **k: None))
    report = fuzz.table(cells)
    assert fuzz.passed(cells), report
    assert {key: cell.runs for key, cell in cells.items()} == {
        **{(fmt, "predict"): PER_FORMAT for fmt in SAMPLE}, ("onnx", "check"): CHECKED, ("tflite", "check"): CHECKED}
    # the sample is not vacuous: damaged files are refused with documented codes (65, 66, 2, 4) or pass
    codes = {code for cell in cells.values() for code in cell.codes}
    assert 65 in codes and codes <= {0, 2, 4, 65, 66, 77}, report


def test_campaigns_saved_side_by_side_add_up_in_merge(tmp_path):
    fuzz = load_fuzz()
    first, second = fuzz.Cell(), fuzz.Cell()
    for index, verdict in enumerate([{"code": 0}, {"code": 0}, {"signal": "SIGSEGV", "bad": "onnx:2: signal"}]):
        first.add(verdict, index)
    for index in (3, 4):
        second.add({"code": 65}, index)
    fuzz.save_cells({("onnx", "check"): first}, tmp_path / "a.json", "part a")
    fuzz.save_cells({("onnx", "check"): second, ("tflite", "check"): fuzz.Cell(runs=1)}, tmp_path / "b.json", "b")
    headers, cells, replaced = fuzz.merge_cells([tmp_path / "a.json", tmp_path / "b.json"])
    assert headers == ["part a", "b"] and replaced == 0
    merged = cells[("onnx", "check")]
    assert (merged.runs, dict(merged.codes), merged.signals) == (5, {0: 2, 65: 2}, 1)
    assert not fuzz.passed(cells)  # the signal of part a is not lost in the sum
    # a replay of mutant 2 after the fix, passed last, replaces its verdict: same runs, the signal gone
    replay = fuzz.Cell()
    replay.add({"code": 65}, 2)
    fuzz.save_cells({("onnx", "check"): replay}, tmp_path / "replay.json", "replay")
    _, cells, replaced = fuzz.merge_cells([tmp_path / "a.json", tmp_path / "b.json", tmp_path / "replay.json"])
    merged = cells[("onnx", "check")]
    assert replaced == 1 and (merged.runs, dict(merged.codes), merged.signals) == (5, {0: 2, 65: 3}, 0)


def test_a_part_saved_without_verdicts_adds_its_counts(tmp_path):
    fuzz = load_fuzz()
    row = {"format": "onnx", "command": "check", "runs": 3, "codes": {"0": 2, "1": 1}, "signals": 0,
           "tracebacks": 1, "hangs": 0, "over_rss": 0, "nan_shown": 0,
           "examples": ["onnx:7 bitflip: exit 1: edgex: error: internal error: KeyError"]}
    (tmp_path / "old.json").write_text(fuzz.json.dumps({"header": "old", "cells": [row]}))
    _, cells, _ = fuzz.merge_cells([tmp_path / "old.json"])
    assert cells[("onnx", "check")].runs == 3 and not fuzz.passed(cells)
    # the offender it lists (onnx:7, exit 1) is replaced by a replay of onnx:7 after the fix
    replay = fuzz.Cell()
    replay.add({"code": 65}, 7)
    fuzz.save_cells({("onnx", "check"): replay}, tmp_path / "replay.json", "replay")
    _, cells, replaced = fuzz.merge_cells([tmp_path / "old.json", tmp_path / "replay.json"])
    cell = cells[("onnx", "check")]
    assert replaced == 1 and fuzz.passed(cells)
    assert (cell.runs, dict(cell.codes), cell.tracebacks, cell.examples) == (3, {0: 2, 65: 1}, 0, [])


def test_a_stopped_campaign_ends_before_its_next_mutant(tmp_path):
    fuzz = load_fuzz()
    calls = []
    cells = fuzz.campaign({}, ["onnx"], 5, seed=0, limit=1, rss_limit_mb=1, minutes=None, recycle=1,
                          checkpoint=lambda *a: calls.append(a), stop=lambda: True)
    assert dict(cells) == {} and calls == []  # nothing ran, no worker was started
