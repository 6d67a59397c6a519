"""Untrusted model files: refused (77) or rejected (65/66) before anything in them runs, and nothing left behind.

Most cases fail before TensorFlow is imported (sniffing, the trust policy and the structure checks
are pure Python), so they run in about a second each.
"""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
from failure_checks import assert_clean_failure
from helpers import run_edgex

from edgex.errors import DataError
from edgex.safety.pickle_scan import unsafe_globals
from edgex.safety.probe import run_probe


class _Evil:
    """A pickle payload whose loading would run a shell command creating the sentinel file."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


def _convert(model: Path, out: Path, *extra: str):
    return run_edgex("convert", "--model", model, "--target", "onnx", "--output", out, *extra)


def _onnx_model(folder: Path, external: dict | None = None, raw_bytes: int = 0) -> Path:
    """A one-Add ONNX model; W kept in external data (`external` = location/offset/length) or inline."""
    from onnx import TensorProto, helper

    n = 4 if raw_bytes == 0 else raw_bytes // 4
    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[n])
    if external is not None:
        weight.data_location = TensorProto.EXTERNAL
        for key, value in external.items():
            entry = weight.external_data.add()
            entry.key, entry.value = key, str(value)
    else:
        weight.raw_data = bytes(4 * n)
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, n])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


# -- missing, empty, truncated, misnamed ---------------------------------------------------------


def test_missing_model_is_66(tmp_path):
    done = _convert(tmp_path / "nope.keras", tmp_path / "out")
    assert_clean_failure(done, 66, "nope.keras", "does not exist", output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zero_byte_model_is_65(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"")
    done = _convert(tmp_path / "model.keras", tmp_path / "out")
    assert_clean_failure(done, 65, "model.keras", "empty", output=tmp_path / "out")


def test_truncated_onnx_is_65(tmp_path):
    path = _onnx_model(tmp_path / "m", raw_bytes=64 * 1024)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    done = run_edgex("check", path)
    assert_clean_failure(done, 65, "model.onnx", "truncated")


def test_onnx_named_tflite_is_misnamed_65(tmp_path):
    onnx_file = _onnx_model(tmp_path / "m")
    misnamed = tmp_path / "model.tflite"
    misnamed.write_bytes(onnx_file.read_bytes())
    done = run_edgex("check", misnamed)
    assert_clean_failure(done, 65, "model.tflite", "misnamed", "an ONNX model", "model.onnx")


def test_directory_named_model_onnx_is_65(tmp_path):
    (tmp_path / "model.onnx").mkdir()
    done = _convert(tmp_path / "model.onnx", tmp_path / "out")
    assert_clean_failure(done, 65, "model.onnx", "is a folder", output=tmp_path / "out")


def test_unknown_bytes_are_65(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"this is not a model at all\n" * 10)
    done = _convert(tmp_path / "model.keras", tmp_path / "out")
    assert_clean_failure(done, 65, "model.keras", "not a Keras", output=tmp_path / "out")


# -- code-carrying formats -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lambda_models(tmp_path_factory):
    """A Keras model whose Lambda layer creates a sentinel file whenever it runs: as .keras and as .h5."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    folder = tmp_path_factory.mktemp("lambda")
    sentinel = folder / "SENTINEL"
    inputs = keras.Input((96, 96, 3))
    where = str(sentinel)  # captured in the Lambda's closure, which Keras serializes with its bytecode
    outputs = keras.layers.Lambda(lambda x: (open(where, "w").close(), x * 2)[1])(inputs)
    model = keras.Model(inputs, outputs)
    model.save(folder / "lam.keras")
    model.save(folder / "lam.h5")
    assert sentinel.exists()  # building the model ran the Lambda: the sentinel mechanism works
    sentinel.unlink()
    return folder, sentinel


@pytest.mark.parametrize("name", ["lam.keras", "lam.h5"])
def test_keras_lambda_is_refused_77_and_never_runs(lambda_models, tmp_path, name):
    folder, sentinel = lambda_models
    done = _convert(folder / name, tmp_path / "out")
    assert_clean_failure(done, 77, name, "--trust-model", output=tmp_path / "out", sentinel=sentinel)


def test_trusted_lambda_does_run_so_the_sentinel_check_is_real(lambda_models, tmp_path):
    folder, sentinel = lambda_models
    # --input-size 50 stops the run right after loading (the model takes 96x96): exit 2.
    done = _convert(folder / "lam.keras", tmp_path / "out", "--trust-model", "--input-size", "50")
    assert_clean_failure(done, 2, "expects", "96", output=tmp_path / "out")
    assert sentinel.exists()
    sentinel.unlink()


def test_pickle_with_reduce_is_refused_77_and_never_runs(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"weights": _Evil(sentinel)}, protocol=4))
    done = _convert(tmp_path / "evil.pt", tmp_path / "out")
    assert_clean_failure(done, 77, "evil.pt", ".system", "state_dict", output=tmp_path / "out", sentinel=sentinel)
    assert unsafe_globals((tmp_path / "evil.pt").read_bytes()) == [f"{os.system.__module__}.system"]


def test_torch_zip_with_evil_data_pkl_is_refused_77(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(_Evil(sentinel), protocol=2))
        archive.writestr("evil/version", "3\n")
    done = _convert(tmp_path / "evil.pt", tmp_path / "out")
    assert_clean_failure(done, 77, "evil.pt", "system", output=tmp_path / "out", sentinel=sentinel)


@pytest.mark.parametrize("name, members, what", [
    ("scripted.pt", {"scripted/code/__torch__.py": "", "scripted/constants.pkl": "", "scripted/data.pkl": ""},
     "TorchScript"),
    ("program.pt2", {"program/archive_format": "pt2", "program/models/model.json": "{}"}, "torch.export"),
])
def test_torchscript_and_pt2_need_trust_77(tmp_path, name, members, what):
    with zipfile.ZipFile(tmp_path / name, "w") as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    done = _convert(tmp_path / name, tmp_path / "out")
    assert_clean_failure(done, 77, name, what, "--trust-model", output=tmp_path / "out")


def test_saved_model_needs_trust_77(tmp_path):
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"\x08\x01")
    done = _convert(tmp_path / "sm", tmp_path / "out")
    assert_clean_failure(done, 77, "SavedModel", "--trust-model", output=tmp_path / "out")


def test_state_dict_pickle_passes_the_scan():
    import collections

    assert unsafe_globals(pickle.dumps(collections.OrderedDict(w=[1.0, 2.0]), protocol=2)) == []


# -- ONNX external data ---------------------------------------------------------------------------


@pytest.fixture()
def outside_secret(tmp_path) -> Path:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"s" * 64)
    return secret


def test_onnx_external_data_inside_the_folder_passes(tmp_path):
    path = _onnx_model(tmp_path / "m", {"location": "weights.bin", "offset": 0, "length": 16})
    (tmp_path / "m" / "weights.bin").write_bytes(bytes(16))
    done = run_edgex("check", path)
    assert done.returncode == 0, done.stderr
    assert "is an ONNX model" in done.stdout


@pytest.mark.parametrize("location, needle", [("../secret.bin", "outside"), ("ABSOLUTE", "absolute path")])
def test_onnx_external_data_outside_is_refused_77(tmp_path, outside_secret, location, needle):
    location = str(outside_secret) if location == "ABSOLUTE" else location
    path = _onnx_model(tmp_path / "m", {"location": location, "offset": 0, "length": 16})
    done = run_edgex("check", path)
    assert_clean_failure(done, 77, "model.onnx", needle, "'W'")


def test_onnx_external_data_symlink_out_is_refused_77(tmp_path, outside_secret):
    path = _onnx_model(tmp_path / "m", {"location": "weights.bin", "offset": 0, "length": 16})
    (tmp_path / "m" / "weights.bin").symlink_to(outside_secret)
    done = _convert(path, tmp_path / "out")  # convert applies the same gate
    assert_clean_failure(done, 77, "model.onnx", "outside", output=tmp_path / "out")


@pytest.mark.parametrize("offset, length, needle", [(0, 64, "holds only 16"), (2**63, 16, "holds only 16"),
                                                     ("12345678901234567890123", 4, "not a non-negative integer")])
def test_onnx_external_data_short_or_overflowing_is_65(tmp_path, offset, length, needle):
    path = _onnx_model(tmp_path / "m", {"location": "weights.bin", "offset": offset, "length": length})
    (tmp_path / "m" / "weights.bin").write_bytes(bytes(16))
    done = run_edgex("check", path)
    assert_clean_failure(done, 65, "model.onnx", needle)


# -- TFLite and OpenVINO IR ------------------------------------------------------------------------


def test_eight_byte_tfl3_file_is_65(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3")
    done = run_edgex("check", tmp_path / "model.tflite")
    assert_clean_failure(done, 65, "model.tflite", "truncated")


@pytest.fixture()
def tiny_ir(tmp_path) -> Path:
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([1, 256], np.float32, name="x")
    model = ov.Model([ops.add(x, ops.constant(np.ones((1, 256), np.float32)))], [x], "tiny")
    ov.save_model(model, tmp_path / "model.xml", compress_to_fp16=False)
    return tmp_path / "model.xml"


def test_intact_ir_passes(tiny_ir):
    done = run_edgex("check", tiny_ir)
    assert done.returncode == 0, done.stderr


def test_ir_with_short_bin_is_65(tiny_ir):
    weights = tiny_ir.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:100])
    done = run_edgex("check", tiny_ir)
    assert_clean_failure(done, 65, "model.bin", "short", "1024")


# -- parsing in a child process ----------------------------------------------------------------------


def test_a_native_crash_in_the_parser_child_is_65_naming_the_file(tmp_path):
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    with pytest.raises(DataError) as caught:
        run_probe(crash, tmp_path / "model.tflite", "tflite")
    assert caught.value.exit_code == 65
    assert "model.tflite" in caught.value.message and "SIGSEGV" in caught.value.message


def test_a_parser_error_reads_as_english(tmp_path):
    """Not "is not a valid a TFLite model": the format's article is dropped after "a valid"."""
    fail = [sys.executable, "-c", "import sys; sys.stderr.write('probe-error: bad magic\\n'); sys.exit(3)"]
    with pytest.raises(DataError) as caught:
        run_probe(fail, tmp_path / "model.tflite", "tflite")
    assert caught.value.message == f"{tmp_path / 'model.tflite'} is not a valid TFLite model: bad magic"


def test_a_hanging_parser_child_is_65(tmp_path):
    with pytest.raises(DataError, match="did not finish"):
        run_probe([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "m.onnx", "onnx", timeout=1)


def test_a_malicious_pickle_hidden_after_a_harmless_one_is_found():
    # Legacy torch.save files are several pickles back to back: every one is inspected.
    hidden = pickle.dumps(1, protocol=2) + pickle.dumps(_Evil(Path("x")), protocol=2)[:-1] + b"raw tensor bytes"
    assert unsafe_globals(hidden) == [f"{os.system.__module__}.system"]


def test_real_torch_checkpoints_are_classified(tmp_path):
    torch = pytest.importorskip("torch")
    from edgex.errors import RefusedError
    from edgex.safety.model_file import check_model_file

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    torch.save(net.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(net, tmp_path / "full.pt")
    assert check_model_file(tmp_path / "weights.pt", parse=False).format == "torch"
    assert check_model_file(tmp_path / "legacy.pt", parse=False).format == "pickle"
    with pytest.raises(RefusedError, match="Sequential"):
        check_model_file(tmp_path / "full.pt", parse=False)
    assert check_model_file(tmp_path / "full.pt", trust_model=True, parse=False).trusted


def test_a_command_can_limit_the_formats_it_takes(tmp_path):
    from edgex.errors import UsageError
    from edgex.safety.model_file import check_model_file

    path = _onnx_model(tmp_path / "m")
    assert check_model_file(path, formats={"onnx"}, parse=False).format == "onnx"
    with pytest.raises(UsageError, match="is an ONNX model; this command takes a TFLite model"):
        check_model_file(path, formats={"tflite"})


def test_a_savedmodel_tensorflow_cannot_load_is_65_not_an_internal_error(tmp_path, monkeypatch):
    """Found by benchmarks/fuzz.py: TensorFlow's load errors on damaged files (a bit flip in an op name gives
    RuntimeError "Op type not registered", a cut variables file IndexError) were exit 1."""
    import tensorflow as tf

    from edgex.sources.load import load_source

    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    for error in (RuntimeError("Op type not registered 'DeptxwiseConv2dNative'"), IndexError("Read less bytes")):
        def fail(*_args, error=error, **_kwargs):
            raise error

        monkeypatch.setattr(tf.saved_model, "load", fail)
        with pytest.raises(DataError, match="cannot load SavedModel"):
            load_source(folder, trust_model=True)
