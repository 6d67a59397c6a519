"""Keras 2 files (what tf_keras' `model.save` writes) load, rebuilt in Keras 3, and convert.

The fixtures in tests/data/keras2 were written by tf_keras 2.21 (tests/data/make_keras2_fixtures.py) with
its outputs on a fixed input; tf_keras is not needed here: the rebuilt model must give those outputs.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, run_edgex

FIXTURES = REPO / "tests" / "data" / "keras2"
FILES = {"logits": "logits.h5", "softmax": "softmax.h5", "nested": "nested.keras"}


def _trust(path: Path) -> list[str]:
    return ["--trust-model"] if path.suffix == ".h5" else []


@pytest.mark.parametrize("name", sorted(FILES))
def test_rebuilt_model_gives_tf_keras_outputs(name):
    from edgex.sources.load import load_source

    path = FIXTURES / FILES[name]
    source = load_source(path, trust_model=bool(_trust(path)))
    try:
        with np.load(FIXTURES / "expected.npz") as expected:
            got = source.predict(expected["input"])
            assert np.max(np.abs(got - expected[name])) < 1e-4
        assert source.output_kind == ("softmax" if name == "softmax" else "logits")
        assert source.load_notes and "24 of 24 weight tensors placed" in source.load_notes[0]
        assert "Keras 2.21.0" in source.load_notes[0]
    finally:
        source.close()


@pytest.mark.parametrize("name", sorted(FILES))
def test_keras2_file_converts(name, images_dir, tmp_path):
    """A Keras 2 .keras needs no --trust-model; parity compares probabilities for the softmax head."""
    path = FIXTURES / FILES[name]
    done = run_edgex("convert", "--model", path, "--target", "tflite", "--calib-data", images_dir,
                     "--output", tmp_path / "out", "--json", *_trust(path))
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    manifest = json.loads((Path(result["path"]) / "manifest.json").read_text())
    assert manifest["parity"]["passed"]
    assert manifest["output_kind"] == ("softmax" if name == "softmax" else "logits")
    assert "rebuilt in Keras 3: 24 of 24 weight tensors placed" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FILES))
def test_keras2_file_converts_to_every_int8_target(name, images_dir, tmp_path):
    path = FIXTURES / FILES[name]
    done = run_edgex("convert", "--model", path, "--target", "all", "--int8", "--calib-data", images_dir,
                     "--calib-size", "24", "--output", tmp_path / "out", "--json", "-q", *_trust(path))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert sorted(r["target"] for r in results) == ["onnx", "openvino", "tflite"]
    assert all(json.loads((Path(r["path"]) / "manifest.json").read_text())["parity"]["passed"] for r in results)


def _renamed_class(path: Path, tmp_path: Path, layer: str, new_class: str) -> Path:
    """A copy of a fixture whose config says `layer` is of class `new_class` (one Keras 3 does not have)."""
    copy = tmp_path / path.name
    if path.suffix == ".h5":
        import h5py

        shutil.copy(path, copy)
        with h5py.File(copy, "r+") as handle:
            config = json.loads(handle.attrs["model_config"])
            _rename(config, layer, new_class)
            handle.attrs["model_config"] = json.dumps(config)
        return copy
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                _rename(config, layer, new_class)
                data = json.dumps(config).encode()
            target.writestr(item, data)
    return copy


def _rename(node, layer: str, new_class: str) -> None:
    if isinstance(node, dict):
        if node.get("config", {}).get("name") == layer and "class_name" in node:
            node["class_name"] = new_class
        for value in node.values():
            _rename(value, layer, new_class)
    elif isinstance(node, list):
        for value in node:
            _rename(value, layer, new_class)


def test_tensor_of_no_layer_is_named(tmp_path):
    """A tensor the config gives no layer for is not silently left out."""
    import h5py

    copy = tmp_path / "logits.h5"
    shutil.copy(FIXTURES / "logits.h5", copy)
    with h5py.File(copy, "r+") as handle:
        handle["model_weights/block2_res_bn"].create_dataset("stray:0", data=np.zeros(3, np.float32))
    done = run_edgex("inspect", copy, "--trust-model")
    assert done.returncode == 65, done.stderr
    assert "1 weight tensor(s) of the file belong to no layer" in done.stderr and "stray" in done.stderr


@pytest.mark.parametrize("name", ["logits", "nested"])
def test_unmappable_layer_is_one_line_exit_65(name, tmp_path):
    path = _renamed_class(FIXTURES / FILES[name], tmp_path, "block2_pool", "FancyPooling2D")
    done = run_edgex("inspect", path, *_trust(path))
    assert done.returncode == 65, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and len(line.replace(str(path), "")) < 300 and "{" not in line, line
    assert "block2_pool" in line and "FancyPooling2D" in line and "Keras 2.21.0" in line
    assert "SavedModel" in line and "Traceback" not in line


def test_missing_weight_tensor_is_named(tmp_path):
    """Every tensor is counted: a layer whose weights the file lacks stops the load, naming the layer."""
    import h5py

    copy = tmp_path / "logits.h5"
    shutil.copy(FIXTURES / "logits.h5", copy)
    with h5py.File(copy, "r+") as handle:
        group = handle["model_weights/block2_res_bn"]
        names = list(group.attrs["weight_names"])
        del group[names[-1].decode() if isinstance(names[-1], bytes) else names[-1]]
        group.attrs["weight_names"] = names[:3]
    done = run_edgex("inspect", copy, "--trust-model")
    assert done.returncode == 65, done.stderr
    assert "block2_res_bn" in done.stderr and "needs 4 weight tensor(s), the file has 3" in done.stderr


def test_h5_without_trust_is_refused_with_a_hint_that_works(tmp_path):
    done = run_edgex("inspect", FIXTURES / "logits.h5")
    assert done.returncode == 77, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "written by Keras 2.21.0" in line
    assert "model.save('model.keras')" in line and "without --trust-model" in line
    assert "Is it a Keras 3" not in line and "re-save it with Keras 3" not in line
    done = run_edgex("inspect", FIXTURES / "nested.keras", "--json")  # what the hint leads to loads untrusted
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"][0]["shape"] == [None, 4]


def test_saved_model_softmax_head_classes_beside_and_inspect(tmp_path):
    """A SavedModel whose graph ends in Softmax is a softmax source; MODEL.classes.json beside the folder is
    read; inspect prints its inputs and outputs."""
    from edgex.sources.load import load_source

    source = load_source(FIXTURES / "softmax.h5", trust_model=True)
    folder = tmp_path / "tiny_softmax"
    source.model.export(str(folder), format="tf_saved_model", verbose=False)
    source.close()
    (tmp_path / "tiny_softmax.classes.json").write_text(json.dumps(["a", "b", "c", "d"]))
    done = run_edgex("inspect", folder, "--trust-model", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["output_kind"] == "softmax" and info["classes"] == ["a", "b", "c", "d"]
    assert info["inputs"][0]["shape"] == [None, 32, 32, 3] and info["outputs"][0]["shape"] == [None, 4]
    assert info["architecture"]["is_xception"] is False  # blocks 1-2 only: judged from its variable names


def test_parity_on_calibration_images_is_said(images_dir, tmp_path):
    """With every image taken for calibration, the printed lines say parity reuses them."""
    done = run_edgex("convert", "--model", FIXTURES / "nested.keras", "--target", "tflite", "--int8",
                     "--calib-data", images_dir, "--output", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    assert "the parity check runs on" in printed and "of the calibration images" in printed
