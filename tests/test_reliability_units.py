"""The building blocks of fault tolerance, in-process: lock, staging, atomic writes, deferred signals."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edgex.artifacts import publish as artifact
from edgex.artifacts.lock import LOCK_NAME, output_lock, read_lock
from edgex.artifacts.manifest import parse_manifest
from edgex.artifacts.signals import Terminated, deferred_signals, handle_signals
from edgex.errors import IOFailure, OutputError, output_failure


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".edgex-staging-") or p.suffix == ".tmp"
            or p.name == LOCK_NAME]


# -- lock -------------------------------------------------------------------------------------------


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    with output_lock(tmp_path / "out"):
        holder = read_lock(tmp_path / "out")
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(OutputError) as caught, output_lock(tmp_path / "out"):
            pass
        assert caught.value.exit_code == 73 and f"pid {os.getpid()}" in caught.value.message
    assert not (tmp_path / "out").exists()  # created by the lock, empty again: removed


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    tmp_path.joinpath(LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with output_lock(tmp_path):
        assert read_lock(tmp_path)["pid"] == os.getpid()
    assert _leftovers(tmp_path) == []


def test_lock_held_on_another_host_is_respected(tmp_path):
    tmp_path.joinpath(LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "now"}))
    with pytest.raises(OutputError, match="pid 1 on elsewhere"), output_lock(tmp_path):
        pass
    assert read_lock(tmp_path)["host"] == "elsewhere"  # not ours to remove


def test_lock_released_when_the_block_raises(tmp_path):
    with pytest.raises(KeyboardInterrupt), output_lock(tmp_path):
        raise KeyboardInterrupt
    assert _leftovers(tmp_path) == []


# -- staging, publish, atomic writes -------------------------------------------------------------------


def test_stale_staging_of_a_dead_run_is_cleaned_next_time(tmp_path):
    stale = tmp_path / f"{artifact.STAGING_PREFIX}{_dead_pid()}-onnx-fp32-0000"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half")
    live = tmp_path / f"{artifact.STAGING_PREFIX}{os.getpid()}-onnx-fp32-1111"
    live.mkdir()
    with artifact.staged(tmp_path / "onnx-fp32") as staging:
        assert staging.is_dir()
    assert not stale.exists() and live.exists()  # a live run's staging is left alone


def test_disk_full_inside_staging_is_74_and_removes_everything(tmp_path):
    destination = tmp_path / "out" / "m" / "onnx-fp32"
    with pytest.raises(IOFailure) as caught, artifact.staged(destination) as staging:
        (staging / "model.onnx").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")  # what a converter's write raises
    assert caught.value.exit_code == 74 and "disk full" in caught.value.message
    assert not destination.exists() and _leftovers(tmp_path) == []
    assert not (tmp_path / "out" / "m").exists()


def test_library_error_mentioning_a_full_disk_is_74(tmp_path):
    with pytest.raises(IOFailure, match="disk full"), artifact.staged(tmp_path / "m" / "t") as _:
        raise RuntimeError("Exception from src/core: write failed: No space left on device")


def test_write_json_leaves_no_temp_file_when_the_disk_fills(tmp_path, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        artifact.write_json(tmp_path / "manifest.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_publish_replaces_an_old_artifact_and_writes_the_manifest_last(tmp_path):
    destination = tmp_path / "m" / "onnx-fp32"
    destination.mkdir(parents=True)
    (destination / "old.onnx").write_bytes(b"old")
    with artifact.staged(destination) as staging:
        (staging / "model.onnx").write_bytes(b"new")
        artifact.publish(staging, destination, {"target": "onnx", "precision": "fp32", "model_file": "model.onnx",
                                                "files": []})
    assert sorted(p.name for p in destination.iterdir()) == ["manifest.json", "model.onnx"]
    assert artifact.read_manifest(destination)["model_file"] == "model.onnx"
    assert _leftovers(tmp_path) == []


def test_output_failure_codes():
    assert output_failure(OSError(errno.ENOSPC, "No space left on device"), "x").exit_code == 74
    assert output_failure(OSError(errno.EFBIG, "File too large"), "x").exit_code == 74
    assert output_failure(OSError(errno.EROFS, "Read-only file system"), "x").exit_code == 73
    assert output_failure(OSError(errno.EIO, "Input/output error"), "x").exit_code == 74


# -- manifest --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, needle", [
    ("[]", "JSON object"), ("{", "not valid JSON"), ('{"target": "onnx"}', "'precision'"),
    ('{"target": "onnx", "precision": "fp32", "model_file": "../../etc/passwd", "files": []}', "outside"),
    ('{"target": "onnx", "precision": "fp32", "model_file": "/abs.onnx", "files": []}', "outside"),
    ('{"target": "onnx", "precision": "fp32", "model_file": "m.onnx", "files": [{"name": "m.onnx", "bytes": -1}]}',
     "non-negative"),
    ('{"target": "onnx", "precision": "fp32", "model_file": "m.onnx", "files": [{"name": "m", "sha256": "zz"}]}',
     "64 hex"),
])
def test_malformed_manifests_are_65(text, needle):
    with pytest.raises(Exception) as caught:
        parse_manifest(text, "x/manifest.json")
    assert getattr(caught.value, "exit_code", None) == 65 and needle in caught.value.message


# -- signals --------------------------------------------------------------------------------------------


def test_sigterm_raises_terminated_with_exit_143():
    with pytest.raises(Terminated) as caught, handle_signals():
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode: it raises here
    assert caught.value.exit_code == 143


def test_deferred_signals_land_after_the_critical_block():
    reached_end = False
    with pytest.raises(KeyboardInterrupt), deferred_signals():
        os.kill(os.getpid(), signal.SIGINT)
        reached_end = True
    assert reached_end


def test_a_damaged_hdf5_dataspace_is_bad_data_not_an_internal_error(tmp_path, monkeypatch):
    """Found by the fuzz campaign (h5:131): h5py raises RuntimeError on a dataspace of 2**33 + 1 elements."""
    import keras
    from helpers import build_tiny_model

    from edgex.errors import DataError
    from edgex.sources.load import load_source

    path = tmp_path / "tiny.h5"
    build_tiny_model().save(path)

    def damaged(*_args, **_kwargs):
        raise RuntimeError("Can't synchronously determine if attribute exists by name (dataspace dim 0 size of "
                           "8589934593 is greater than maxdim size of 1)")

    monkeypatch.setattr(keras.saving, "load_model", damaged)
    with pytest.raises(DataError, match="cannot load Keras model .*dataspace dim 0"):
        load_source(path, trust_model=True)


def test_a_keras_zip_whose_metadata_is_not_an_object_names_no_version(tmp_path):
    """Found by the fuzz campaign (keras:301, keras:435): metadata.json holding a string or a number was exit 1."""
    import zipfile

    from edgex.sources.keras2_file import keras_version

    for i, body in enumerate(('"3.15"', "7", "[1]")):
        path = tmp_path / f"m{i}.keras"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.json", body)
        assert keras_version(path) is None
