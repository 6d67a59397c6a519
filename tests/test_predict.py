"""`edgex predict` and `edgex.load`: manifest-driven preprocessing and scores, the same answers as `edgex eval`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import CLASSES, REPO, run_edgex
from PIL import Image
from test_bench_fixtures import tiny_int8_artifacts

from edgex.errors import DataError, UsageError
from edgex.predict import standalone
from edgex.predict.result import Prediction, Predictions
from edgex.preprocess import IMAGE_SUFFIXES, Preprocess, find_images, read_rgb

TARGETS = ("tflite", "onnx", "openvino")


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory):
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


def odd_images(root: Path) -> Path:
    """Images whose decoding matters: EXIF rotation, alpha, gray, palette transparency, CMYK, 16-bit."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees
    Image.fromarray(pixels).save(root / "rotated.jpg", exif=exif)
    alpha = np.dstack([pixels, rng.integers(0, 256, (50, 70), dtype=np.uint8)])
    Image.fromarray(alpha, "RGBA").save(root / "alpha.png")
    Image.fromarray(pixels).convert("L").save(root / "gray.png")
    palette = Image.fromarray(pixels).convert("P")
    palette.info["transparency"] = 0
    palette.save(root / "palette.png", transparency=0)
    Image.fromarray(pixels).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65536, (40, 30), dtype=np.uint16)).save(root / "deep.png")
    return root


# -- scores, lines, CSV and inputs: shared with the bundle's predict.py ---------------------------------------


def test_probabilities_follow_the_manifest_output_kind():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 50.0]])
    soft = standalone.probabilities(logits, "logits")
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    np.testing.assert_allclose(soft[0], np.exp([2, 1, 0]) / np.exp([2, 1, 0]).sum())
    assert soft[1].argmax() == 2 and soft[1, 2] > 0.999
    probs = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_array_equal(standalone.probabilities(probs, "softmax"), probs)  # as-is, not re-softmaxed
    sigmoid = np.array([[0.9, 0.8, 0.1]])  # independent per class: need not sum to 1
    np.testing.assert_array_equal(standalone.probabilities(sigmoid, "sigmoid"), sigmoid)
    with pytest.raises(ValueError, match="unknown output kind"):
        standalone.probabilities(probs, "argmax")
    result = Predictions.from_outputs(["a", "b"], logits, ["x", "y"], "logits", k=2)
    assert result.classes == ["x", "y", "class_2"] and result.labels == ["x", "class_2"]
    assert result.top_k[0] == [("x", pytest.approx(soft[0, 0])), ("y", pytest.approx(soft[0, 1]))]
    assert list(result.indices) == [0, 2] and result.logits.dtype == np.float32
    row = result[1]
    assert isinstance(row, Prediction) and row.input == "b" and row.label == "class_2" and len(row.top_k) == 2
    assert [p.input for p in result] == ["a", "b"]


def test_top_k_lines_and_csv_rows(tmp_path):
    top = standalone.top_k(np.array([0.1, 0.4, 0.4, 0.1]), ["a", "b", "c", "d"], 3)
    assert top == [("b", 0.4), ("c", 0.4), ("a", 0.1)]  # ties: the lower class index first
    ok = standalone.Row("photo.jpg", [("dress", 0.91234), ("shirt", 0.05)], None, None)
    bad = standalone.Row("dir/bad, name.jpg", None, None, "cannot decode: truncated")
    assert standalone.format_line(ok) == "photo.jpg  dress 0.91  shirt 0.05"
    assert standalone.format_line(bad) == "dir/bad, name.jpg  error: cannot decode: truncated"
    standalone.write_csv(str(tmp_path / "out.csv"), [ok, bad])
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["path", "label", "probability", "top_k"],
                    ["photo.jpg", "dress", "0.912340", "dress:0.912340|shirt:0.050000"],
                    ["dir/bad, name.jpg", "", "", ""]]
    assert os.listdir(tmp_path) == ["out.csv"]  # no temporary file left


def test_inputs_are_listed_like_edgex_and_missing_ones_are_kept(images_dir, tmp_path):
    assert standalone.IMAGE_SUFFIXES == IMAGE_SUFFIXES
    listed = standalone.expand_inputs([str(images_dir)])
    assert listed == [str(p) for p in find_images(images_dir)] and len(listed) == 32
    given = str(images_dir / "red_stripes") + "/"
    assert standalone.expand_inputs([given])[0].startswith(given)  # the path as the user typed it
    pattern = str(images_dir / "*" / "a" / "*.png")
    globbed = standalone.expand_inputs([pattern, str(tmp_path / "missing.jpg"), str(tmp_path / "*.none")])
    assert globbed[:-2] == sorted(str(p) for p in images_dir.glob("*/a/*.png")) and len(globbed) > 2
    assert globbed[-2:] == [str(tmp_path / "missing.jpg"), str(tmp_path / "*.none")]  # each gets an error line
    (tmp_path / "notes.txt").write_text("x")
    assert standalone.expand_inputs([str(tmp_path / "*")]) == [str(tmp_path / "*")]  # globs list images only


@pytest.mark.parametrize("spec", [
    {"height": 33, "width": 47},
    {"height": 40, "width": 40, "interpolation": "bicubic", "crop_fraction": 0.8, "channel_order": "BGR"},
    {"height": 24, "width": 30, "interpolation": "nearest", "layout": "NCHW", "mean": [0.0, 0.0, 0.0],
     "std": [1.0, 2.0, 4.0]},
])
def test_standalone_preprocessing_equals_edgex(tmp_path, spec):
    preprocess = Preprocess.from_dict(spec)
    for path in sorted(odd_images(tmp_path).iterdir()):
        expected = preprocess.load(path)
        np.testing.assert_array_equal(standalone.preprocess(standalone.read_rgb(str(path)), spec), expected)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(standalone.ImageError, match="cannot decode"):
        standalone.read_rgb(str(tmp_path / "broken.png"))


# -- the command and the Python API on the tiny artifacts -----------------------------------------------------


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("target", TARGETS)
def test_predict_top1_equals_eval_on_every_image(tiny_artifacts, images_dir, tmp_path, target):
    from edgex.converters import TARGETS as REGISTRY

    from edgex.artifacts.manifest import load_manifest
    from edgex.bench.child import run_child
    from edgex.evaluation.dataset import preprocess_images
    from edgex.options import BenchSettings

    folder = tiny_artifacts / f"{target}-int8"
    done = run_edgex("predict", folder, images_dir, "--top-k", "4", "--csv", tmp_path / "p.csv", "-q")
    assert done.returncode == 0, done.stderr
    rows = _read_csv(tmp_path / "p.csv")
    assert len(rows) == len(done.stdout.splitlines()) == 32
    assert [line.split("  ")[:2] for line in done.stdout.splitlines()] == [
        [r["path"], f"{r['label']} {float(r['probability']):.2f}"] for r in rows]
    predicted = [r["label"] for r in rows]
    truth = [Path(r["path"]).relative_to(images_dir).parts[0] for r in rows]

    evaluated = run_edgex("eval", folder, "--eval-data", images_dir, "--no-source", "--output", tmp_path / "ev", "-q")
    assert evaluated.returncode == 0, evaluated.stderr
    (report,) = json.loads((tmp_path / "ev" / "report.json").read_text())["results"]
    confusion = np.zeros((len(CLASSES), len(CLASSES)), int)
    for t, p in zip(truth, predicted, strict=True):
        confusion[CLASSES.index(t), CLASSES.index(p)] += 1
    assert report["accuracy"]["top1"] == pytest.approx(np.mean(np.array(truth) == np.array(predicted)))
    assert report["accuracy"]["confusion"]["matrix"] == confusion.tolist()

    # Per image: eval's own code path (the runner child on the manifest-preprocessed batch) gives the same labels.
    manifest = load_manifest(folder)
    inputs = preprocess_images([Path(r["path"]) for r in rows], Preprocess.from_dict(manifest["preprocess"]))
    np.save(tmp_path / "in.npy", inputs)
    answer = run_child(folder / manifest["model_file"], REGISTRY[target].runtime, "int8",
                       BenchSettings(min_runs=1, min_seconds=0, warmup=0, latency=False), tmp_path / "in.npy",
                       tmp_path / "out.npy")
    assert answer["ok"], answer
    logits = np.load(tmp_path / "out.npy")
    assert [CLASSES[i] for i in logits.argmax(axis=1)] == predicted
    np.testing.assert_allclose([float(r["probability"]) for r in rows],
                               standalone.probabilities(logits).max(axis=1), atol=2e-6)


def test_python_api_takes_paths_pil_images_and_arrays(tiny_artifacts, images_dir):
    import edgex
    import edgex.api

    assert edgex.api.load is edgex.load
    files = sorted(images_dir.rglob("*.jpg"))[:2]
    pixels = np.stack([np.asarray(read_rgb(f)) for f in files])  # uint8 (2, H, W, 3)
    with edgex.load(tiny_artifacts / "tflite-int8" / "model.tflite", top_k=3) as predictor:
        result = predictor.predict([str(files[0]), Image.open(files[1]), pixels])
        assert isinstance(result, Predictions) and len(result) == 4
        assert result.inputs == [str(files[0]), "<image 1>", "<array 2[0]>", "<array 2[1]>"]
        np.testing.assert_array_equal(result.logits[0], result.logits[2])  # a path and its pixels
        np.testing.assert_array_equal(result.logits[1], result.logits[3])  # a PIL image and its pixels
        assert result.probabilities.shape == (4, 4) and np.allclose(result.probabilities.sum(axis=1), 1)
        assert all(len(top) == 3 for top in result.top_k) and set(result.labels) <= set(CLASSES)
        assert result.labels == [CLASSES[i] for i in result.logits.argmax(axis=1)]
        preprocessed = predictor.preprocess.load(files[0])  # float32 arrays are taken as preprocessed
        np.testing.assert_array_equal(predictor.predict(preprocessed).logits[0], result.logits[0])
        assert predictor.predict(files[1], top_k=1).top_k[0] == [result.top_k[1][0]]
        with pytest.raises(DataError, match="nope.jpg"):
            predictor.predict([files[0], images_dir / "nope.jpg"])
        with pytest.raises(UsageError, match="float array"):
            predictor.predict(np.zeros((3, 5, 5), np.float32))
    with pytest.raises(UsageError, match="closed"):
        predictor.predict(files[0])


def test_unreadable_images_get_their_line_and_exit_4(tiny_artifacts, images_dir, tmp_path):
    good = sorted(images_dir.rglob("*.jpg"))[0]
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes(good.read_bytes())
    (folder / "b_truncated.jpg").write_bytes(good.read_bytes()[:300])
    (folder / "c_text.png").write_text("not an image")
    missing = str(tmp_path / "gone.jpg")
    done = run_edgex("predict", tiny_artifacts / "onnx-int8", folder, missing, "--csv", tmp_path / "p.csv")
    assert done.returncode == 4, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == [str(folder / n) for n in
                                                       ("a_good.jpg", "b_truncated.jpg", "c_text.png")] + [missing]
    assert "error:" not in lines[0] and all("  error: " in line for line in lines[1:])
    assert "3 of 4 images failed" in done.stderr and "\x1b" not in done.stdout + done.stderr  # no bar in a pipe
    rows = _read_csv(tmp_path / "p.csv")
    assert rows[0]["label"] in CLASSES and [r["label"] for r in rows[1:]] == ["", "", ""]
    as_json = run_edgex("predict", tiny_artifacts / "onnx-int8", folder, "--json", "--top-k", "2")
    assert as_json.returncode == 4
    report = json.loads(as_json.stdout)
    assert report["count"] == 3 and report["failed"] == 2 and report["runtime"] == "onnxruntime"
    assert report["images"][0]["label"] == rows[0]["label"] and len(report["images"][0]["top_k"]) == 2
    assert report["images"][1]["error"] and report["images"][1]["label"] is None


def test_progress_bar_only_on_a_terminal(tiny_artifacts, images_dir):
    import pty

    leader, follower = pty.openpty()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="120", TERM="xterm")
    process = subprocess.Popen([sys.executable, "-m", "edgex", "predict", str(tiny_artifacts / "onnx-int8"),
                                str(images_dir / "red_stripes")], stdin=subprocess.DEVNULL, stdout=follower,
                               stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=120) == 0
    os.close(leader)
    text = seen.decode(errors="replace")
    assert "\x1b" in text  # the bar was drawn (and cleared)
    assert all(f"{p}  red_stripes" in text for p in standalone.expand_inputs([str(images_dir / "red_stripes")]))


def test_source_model_and_usage_errors(tiny_model, tiny_artifacts, images_dir, tmp_path):
    source = run_edgex("predict", tiny_model, images_dir, "--csv", tmp_path / "s.csv", "-q")
    assert source.returncode == 0, source.stderr
    int8 = run_edgex("predict", tiny_artifacts / "tflite-int8", images_dir, "--csv", tmp_path / "q.csv", "-q")
    labels = [[r["label"] for r in _read_csv(tmp_path / name)] for name in ("s.csv", "q.csv")]
    assert int8.returncode == 0 and np.mean(np.array(labels[0]) == np.array(labels[1])) >= 0.9

    bare = tmp_path / "bare.tflite"
    bare.write_bytes((tiny_artifacts / "tflite-int8" / "model.tflite").read_bytes())
    cases = [((tmp_path / "nothing", images_dir), 66, "does not exist"),
             ((bare, images_dir), 2, "no manifest.json beside it"),
             ((tiny_artifacts, images_dir), 2, "not an artifact folder"),
             ((tiny_artifacts / "onnx-int8", tmp_path / "empty*.jpg"), 66, "no images"),
             ((tiny_artifacts / "onnx-int8", images_dir, "--top-k", "0"), 2, "--top-k must be at least 1"),
             ((tiny_artifacts / "tflite-int8", images_dir, "--device", "gpu"), 2, "CPU only")]
    for args, code, message in cases:
        done = run_edgex("predict", *args)
        assert done.returncode == code and message in done.stderr, (args, done.returncode, done.stderr)
        assert done.stderr.count("\n") == 1  # one line, no traceback


def test_predict_and_bundle_commands_load_no_numpy_for_help():
    code = ("import sys, edgex.cli; edgex.cli.build_parser(); import edgex.commands.predict, edgex.commands.bundle; "
            "print([m for m in ('numpy', 'PIL', 'onnxruntime', 'edgex.predict.model') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- the first run of an artifact file happens in a child (a native crash is exit 65, not a dead edgex) ------


def test_a_runtime_crash_on_first_open_is_exit_65_naming_the_file(tiny_artifacts, images_dir, tmp_path):
    """A real SIGSEGV in the child that first opens the model (a sitecustomize crashes only that child)."""
    crasher = tmp_path / "crash"
    crasher.mkdir()
    (crasher / "sitecustomize.py").write_text(
        "import os, signal\n"
        "if b'edgex.safety.first_open' in open('/proc/self/cmdline', 'rb').read():\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n")
    image = sorted(images_dir.rglob("*.png"))[0]
    env = {"PYTHONPATH": str(crasher), "EDGEX_CACHE_DIR": str(tmp_path / "cache")}
    done = run_edgex("predict", tiny_artifacts / "onnx-int8", image, env=env)
    assert done.returncode == 65, done.stderr
    assert "model.onnx crashed onnxruntime while loading or running it (SIGSEGV)" in done.stderr
    assert "Traceback" not in done.stderr and not done.stdout.strip()
    assert not (tmp_path / "cache" / "opened").exists()  # a crash is never remembered as a good file
    again = run_edgex("predict", tiny_artifacts / "onnx-int8", image,
                      env={"EDGEX_CACHE_DIR": str(tmp_path / "cache")})
    assert again.returncode == 0, again.stderr
    (marker,) = (tmp_path / "cache" / "opened").iterdir()
    assert marker.name.startswith("onnxruntime-onnxruntime-")


def test_first_open_runs_once_per_file_bytes_and_runtime(tiny_artifacts, tmp_path, monkeypatch):
    from edgex.artifacts.manifest import load_manifest
    from edgex.safety import first_open

    monkeypatch.setenv("EDGEX_CACHE_DIR", str(tmp_path))
    folder = tiny_artifacts / "tflite-int8"
    digest = first_open.files_digest(load_manifest(folder))
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(first_open.subprocess, "run", lambda *a, **k: calls.append(a) or real_run(*a, **k))
    for _ in range(2):
        first_open.first_open_in_child("litert", folder / "model.tflite", "int8", digest)
    assert len(calls) == 1  # the second run of the same bytes starts at once
    first_open.first_open_in_child("litert", folder / "model.tflite", "int8", None)
    assert len(calls) == 2  # nothing vouches for bytes without a sha256: the child runs again
    assert first_open.files_digest({"files": [{"name": "a", "sha256": None}]}) is None
    monkeypatch.setattr(first_open.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, -9, "", ""))
    with pytest.raises(DataError, match=r"crashed litert while loading or running it \(SIGKILL\)"):
        first_open.first_open_in_child("litert", folder / "model.tflite", "int8", "0" * 64)
