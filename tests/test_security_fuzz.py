"""Bounded fuzzing of everything that parses untrusted bytes: it may refuse, it must never crash.

Each parser gets up to 200 generated inputs (no deadline: the first call imports modules).
A typed EdgexError (or the parser's own documented error) is fine; any other exception is a bug.
"""

from __future__ import annotations

import json
import pickle
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgex.artifacts.manifest import parse_manifest
from edgex.errors import EdgexError
from edgex.safety import sniff
from edgex.safety.model_file import check_model_file
from edgex.safety.onnx_external_data import external_refs
from edgex.safety.pickle_scan import PickleError, pickle_globals
from edgex.safety.protobuf_wire import WireError, iter_fields

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAGICS = [b"", b"\x08\x07", b"\x1c\x00\x00\x00TFL3", sniff.HDF5_MAGIC, b"PK\x03\x04", b"<?xml version='1.0'?><net",
          b"\x80\x04", b"\x10\x00\x00\x00\x00\x00\x00\x00{"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(prefix=st.sampled_from(MAGICS), body=st.binary(max_size=512))
def test_sniff_bytes_always_answers_a_known_format(prefix, body):
    assert sniff.sniff_bytes(prefix + body) in sniff.FORMAT_NAMES


@FUZZ
@given(prefix=st.sampled_from(MAGICS), body=st.binary(max_size=512),
       suffix=st.sampled_from([".onnx", ".tflite", ".xml", ".keras", ".h5", ".pt", ".pt2", ".bin", ""]))
def test_model_file_gate_only_raises_typed_errors(prefix, body, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"model{suffix}"
        path.write_bytes(prefix + body)
        try:
            check_model_file(path, parse=False)
        except EdgexError as error:
            assert error.exit_code in (2, 65, 66, 77)
            assert "\n" not in error.one_line()


@FUZZ
@given(data=st.binary(max_size=512))
def test_protobuf_walker_raises_only_wire_errors(data):
    try:
        for _number, _wire, value in iter_fields(data):
            if isinstance(value, tuple):
                assert 0 <= value[0] <= value[1] <= len(data)
    except WireError:
        pass


@FUZZ
@given(body=st.binary(max_size=512))
def test_onnx_external_data_reader_raises_only_data_errors(body):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(b"\x08\x08" + body)
        try:
            external_refs(path)
        except EdgexError as error:
            assert error.exit_code == 65


@FUZZ
@given(data=st.binary(max_size=256) | st.builds(lambda v: pickle.dumps(v, protocol=4), json_values))
def test_pickle_scanner_raises_only_pickle_errors(data):
    try:
        found = pickle_globals(data)
    except PickleError:
        return
    assert all(isinstance(name, str) for name in found)


@FUZZ
@given(text=st.text(alphabet=string.printable, max_size=300))
def test_manifest_parser_on_arbitrary_text(text):
    try:
        parse_manifest(text)
    except EdgexError as error:
        assert error.exit_code == 65


@FUZZ
@given(value=json_values, model_file=st.text(max_size=30), files=st.lists(json_values, max_size=3))
def test_manifest_parser_on_json_shaped_input(value, model_file, files):
    document = {"target": "onnx", "precision": "int8", "model_file": model_file, "files": files, "extra": value}
    try:
        parsed = parse_manifest(json.dumps(document))
    except EdgexError as error:
        assert error.exit_code == 65
        return
    # Whatever passes names files inside the artifact folder only.
    for name in [parsed["model_file"], *(f["name"] for f in parsed["files"])]:
        assert not name.startswith("/") and ".." not in Path(name).parts


@FUZZ
@given(config=json_values)
def test_pipeline_config_validation_raises_only_usage_errors(config):
    from edgex.run.config import validate

    try:
        validate(config)
    except EdgexError as error:
        assert error.exit_code == 2


@FUZZ
@given(data=st.binary(max_size=300))
def test_pipeline_config_loading_of_arbitrary_bytes(data):
    from edgex.run.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_bytes(data)
        try:
            load_config(path)
        except EdgexError as error:
            assert error.exit_code in (2, 65)
