"""Accuracy: labelled data (folders or CSV), top-1/top-5, per class, confusion, paired bootstrap of the drop."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import CLASSES, run_edgex
from test_bench_fixtures import tiny_int8_artifacts

from edgex.errors import DataError, MissingInputError
from edgex.evaluation.dataset import load_labelled
from edgex.evaluation.metrics import accuracy, top1_drop


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory):
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


def test_accuracy_top5_only_with_more_than_five_classes_and_confusion_rows_are_true_classes():
    labels = np.array([0, 1, 2, 2])
    logits = np.eye(4)[[0, 2, 2, 1]]  # image 1 (class 1) predicted as 2, image 3 (class 2) as 1
    result = accuracy(logits, labels, ["a", "b", "c", "d"])
    assert result["top1"] == 0.5 and result["correct"] == 2 and "top5" not in result
    assert result["confusion"]["matrix"][1] == [0, 0, 1, 0] and result["confusion"]["matrix"][2] == [0, 1, 1, 0]
    assert result["per_class"]["c"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert result["per_class"]["d"]["accuracy"] is None  # no images of that class
    six = np.tile(np.arange(6, 0, -1, dtype=float), (3, 1))  # class 0 first, class 5 last
    assert accuracy(six, np.array([0, 4, 5]), list("abcdef"))["top5"] == pytest.approx(2 / 3)


def test_bootstrap_interval_separates_noise_from_a_real_drop():
    same = np.ones(200, bool)
    zero = top1_drop(same, same)
    assert zero["drop_pp"] == 0 and zero["ci95_pp"] == [0.0, 0.0] and not zero["significant"]
    rng = np.random.default_rng(3)
    reference = rng.random(400) < 0.9
    one_flip = reference.copy()
    one_flip[np.flatnonzero(reference)[0]] = False  # one image lost out of 400: 0.25 pp
    small = top1_drop(reference, one_flip)
    assert small["drop_pp"] == pytest.approx(0.25) and small["ci95_pp"][0] <= 0 and not small["significant"]
    worse = reference & (rng.random(400) < 0.85)  # loses ~13 pp
    big = top1_drop(reference, worse)
    assert big["significant"] and big["ci95_pp"][0] > 5 and big["ci95_pp"][0] <= big["drop_pp"] <= big["ci95_pp"][1]


def test_csv_labels_by_name_or_index_relative_to_the_csv(images_dir, tmp_path):
    files = sorted(images_dir.rglob("*.jpg"))[:6]
    lines = ["path,label"] + [f"{p},{p.relative_to(images_dir).parts[0]}" for p in files[:3]]
    lines += [f"{p},{CLASSES.index(p.relative_to(images_dir).parts[0])}" for p in files[3:]]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    data = load_labelled(tmp_path / "labels.csv", CLASSES)
    assert data.kind == "csv" and len(data.files) == 6 and data.classes == CLASSES
    assert [CLASSES[i] for i in data.labels] == [p.relative_to(images_dir).parts[0] for p in files]
    (tmp_path / "img.png").write_bytes(files[0].read_bytes())
    (tmp_path / "rel.csv").write_text("img.png,gren_bars\n")
    with pytest.raises(DataError) as error:
        load_labelled(tmp_path / "rel.csv", CLASSES)
    assert "row 1" in error.value.one_line() and "Did you mean 'green_bars'" in error.value.one_line()
    (tmp_path / "gone.csv").write_text("missing.png,green_bars\n")
    with pytest.raises(MissingInputError, match="missing.png"):
        load_labelled(tmp_path / "gone.csv", CLASSES)


def test_folder_order_follows_the_manifest_classes(images_dir):
    reordered = list(reversed(CLASSES))
    data = load_labelled(images_dir, reordered)
    assert data.classes == reordered
    first = data.files[0].relative_to(images_dir).parts[0]
    assert reordered[data.labels[0]] == first


def test_eval_cli_on_csv_matches_folder_evaluation(tiny_artifacts, images_dir, tmp_path):
    rows = [f"{p},{p.relative_to(images_dir).parts[0]}" for p in sorted(images_dir.rglob("*"))
            if p.suffix in (".jpg", ".png")]
    (tmp_path / "all.csv").write_text("\n".join(rows) + "\n")
    results = []
    for data in (images_dir, tmp_path / "all.csv"):
        done = run_edgex("eval", tiny_artifacts / "tflite-int8", "--eval-data", data, "--json", "--no-source", "-q")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        (row,) = report["results"]
        assert row["status"] == "ok" and row["latency_ms"] is None and row["vs_source"] is None
        assert row["vs_source_note"].startswith("source evaluation switched off")
        results.append(row["accuracy"])
    assert results[0]["n"] == results[1]["n"] == 32
    assert results[0]["top1"] == results[1]["top1"] and results[0]["confusion"] == results[1]["confusion"]


def test_eval_requires_eval_data(tiny_artifacts):
    done = run_edgex("eval", tiny_artifacts)
    assert done.returncode == 2 and "--eval-data" in done.stderr


def test_labelled_images_say_where_their_class_names_came_from(images_dir, tmp_path):
    """eval fell back to sorted folder names without a word when no manifest named the classes."""
    assert load_labelled(images_dir).classes_from == "sorted folder names"
    assert load_labelled(images_dir).classes == sorted(CLASSES) != CLASSES
    csv = tmp_path / "labels.csv"
    csv.write_text("".join(f"{p},{p.relative_to(images_dir).parts[0]}\n" for p in sorted(images_dir.rglob("*.png"))))
    assert load_labelled(csv).classes_from == "the CSV's labels, sorted"
