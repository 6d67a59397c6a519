"""`edgex check` reads every weight byte of the formats the load gate only sniffs (edgex.safety.contents):
a damaged SavedModel, torch zip or safetensors file is 65 in `check`, not "ok" and then 65 in `convert`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from failure_checks import assert_clean_failure
from helpers import run_edgex


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A two-variable SavedModel written by TensorFlow itself."""
    import tensorflow as tf

    class Dense(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.arange(64, dtype=np.float32).reshape(8, 8) / 64)
            self.b = tf.Variable(np.ones(8, np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
        def __call__(self, x):
            return tf.matmul(x, self.w) + self.b

    folder = tmp_path_factory.mktemp("sm") / "saved_model"
    tf.saved_model.save(Dense(), str(folder))
    return folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / folder.name))


def test_an_intact_saved_model_passes_with_its_variables_read(saved_model):
    done = run_edgex("check", saved_model, "--trust-model", "--json")
    assert done.returncode == 0, done.stderr
    details = json.loads(done.stdout)["details"]
    assert details["variables"] >= 2 and details["operations"] > 0


def test_a_bit_flip_in_saved_model_variables_is_65(saved_model, tmp_path):
    copy = _copy(saved_model, tmp_path)
    data = copy / "variables" / "variables.data-00000-of-00001"
    _flip_byte(data, data.stat().st_size // 2)
    assert_clean_failure(run_edgex("check", copy, "--trust-model"), 65, str(copy), "Checksum does not match")


def test_a_saved_model_naming_an_unknown_operation_is_65(saved_model, tmp_path):
    copy = _copy(saved_model, tmp_path)
    graph = copy / "saved_model.pb"
    raw = graph.read_bytes()
    assert b"MatMul" in raw
    graph.write_bytes(raw.replace(b"MatMul", b"MatMux"))  # same length: the protobuf stays well-formed
    assert_clean_failure(run_edgex("check", copy, "--trust-model"), 65, "MatMux", "does not know")


def test_a_bit_flip_in_torch_zip_weights_is_65(tmp_path):
    import zipfile

    import torch

    path = tmp_path / "weights.pt"
    torch.save({"w": torch.arange(4096, dtype=torch.float32)}, path)
    assert run_edgex("check", path).returncode == 0
    with zipfile.ZipFile(path) as archive:
        entry = next(i for i in archive.infolist() if "/data/" in i.filename)
    local = path.read_bytes()[entry.header_offset:entry.header_offset + 30]  # the local header's own lengths
    data_start = entry.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30],
                                                                                                    "little")
    _flip_byte(path, data_start + entry.compress_size // 2)
    assert_clean_failure(run_edgex("check", path), 65, "weights.pt", "CRC-32", entry.filename)


def _safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = array.astype(np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def test_a_nan_weight_in_safetensors_is_65_and_a_clean_file_passes(tmp_path):
    clean, bad = tmp_path / "clean.safetensors", tmp_path / "bad.safetensors"
    weights = {"conv.weight": np.ones((4, 4), np.float32), "bn.bias": np.zeros(4, np.float32)}
    _safetensors(clean, weights)
    done = run_edgex("check", clean, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["details"]["float_tensors"] == 2
    weights["bn.bias"][2] = np.nan
    _safetensors(bad, weights)
    assert_clean_failure(run_edgex("check", bad), 65, "bad.safetensors", "'bn.bias'", "1 NaN")


def test_a_keras_model_with_a_nan_weight_is_65_naming_it(tiny_model, tmp_path):
    """The gate's parse reads every HDF5 dataset of a .keras/.h5 already; a NaN in one is bad data, named."""
    import keras

    model = keras.models.load_model(tiny_model)
    kernel, bias = model.layers[-1].get_weights()
    bias[0] = np.nan
    model.layers[-1].set_weights([kernel, bias])
    model.save(tmp_path / "nan.keras")
    assert_clean_failure(run_edgex("check", tmp_path / "nan.keras"), 65, "nan.keras", "1 NaN value(s)")


def test_an_openvino_ir_with_a_nan_constant_is_65_naming_it(tmp_path):
    import openvino as ov
    from openvino import opset8 as ops

    image = ops.parameter([1, 4], np.float32, name="image")
    bias = np.ones((1, 4), np.float32)
    bias[0, 1] = np.nan
    model = ov.Model([ops.add(image, ops.constant(bias, name="head_bias"))], [image], "m")
    ov.save_model(model, str(tmp_path / "model.xml"), compress_to_fp16=False)
    assert_clean_failure(run_edgex("check", tmp_path / "model.xml"), 65, "'head_bias'", "1 NaN")


def test_a_torch_zip_entry_outside_its_folder_is_65(tmp_path):
    """Found by the campaign (pt:6): PyTorch's reader refuses such an archive, and now check does too."""
    import zipfile

    import torch

    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(4)}, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("../evil", b"x")
    assert_clean_failure(run_edgex("check", path), 65, "'../evil'", "outside the archive's folder weights/")
