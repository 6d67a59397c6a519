"""Validate an ONNX file's external-data references before any library opens it.

An ONNX tensor may keep its bytes in another file named by a `location` string. A crafted model
can point that at `../../etc/shadow`, an absolute path or a symlink out of its folder
(CVE-2024-27318 and successors), or claim an offset past the end of the file. This module walks
the protobuf wire format itself, so nothing is read outside the model's folder, ever.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from edgex.errors import DataError, MissingInputError, RefusedError
from edgex.safety.protobuf_wire import LENGTH, VARINT, WireError, iter_fields

_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_MAX_DEPTH = 64


@dataclass(frozen=True)
class ExternalRef:
    """One tensor's external data: where it lives and which bytes of that file it uses."""

    tensor: str
    location: str
    offset: int
    length: int | None


def external_refs(model_path: Path) -> list[ExternalRef]:
    """Every external-data reference in the model, read from the raw protobuf (truncation is a DataError)."""
    model_path = Path(model_path)
    size = model_path.stat().st_size
    if size == 0:
        raise DataError(f"{model_path} is empty (0 bytes)", "Re-export or re-download the model.")
    refs: list[ExternalRef] = []
    with open(model_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            _walk_model(data, 0, size, refs)
        except WireError as exc:
            raise DataError(f"{model_path} is not a valid ONNX file ({exc}); it may be truncated",
                            "Re-export or re-download the model.") from exc
    return refs


def check_external_data(model_path: Path) -> list[ExternalRef]:
    """Refuse (77) locations outside the model's folder; reject (65/66) missing, odd or short files."""
    model_path = Path(model_path)
    base = Path(os.path.realpath(model_path.parent))
    refs = external_refs(model_path)
    for ref in refs:
        _check_one(model_path, base, ref)
    return refs


def _check_one(model_path: Path, base: Path, ref: ExternalRef) -> None:
    where = f"tensor {ref.tensor!r} of {model_path}"
    location = ref.location
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if "\0" in location or posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith("\\"):
        raise RefusedError(f"{where} reads external data from the absolute path {location!r}",
                           "External data must be a file beside the model; do not use this model.")
    if ".." in posix.parts or ".." in windows.parts:
        raise RefusedError(f"{where} reads external data from {location!r}, outside the model's folder",
                           "External data must be a file beside the model; do not use this model.")
    target = base / location
    real = Path(os.path.realpath(target))
    if real != base and base not in real.parents:
        raise RefusedError(f"{where} reads external data through {location!r}, a link to {real} outside "
                           "the model's folder", "Replace the link with the real file, or do not use this model.")
    try:
        info = os.stat(real)
    except FileNotFoundError as exc:
        raise MissingInputError(f"external data file {target} of {where} is missing",
                                "Copy the model together with its data files.") from exc
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"external data {target} of {where} is not a regular file",
                        "External data must be an ordinary file beside the model.")
    end = ref.offset + (ref.length if ref.length is not None else 0)
    if ref.offset > info.st_size or end > info.st_size:
        raise DataError(f"{where} needs bytes {ref.offset}..{end} of {target}, which holds only {info.st_size}",
                        "The data file is truncated or does not belong to this model; re-download both.")


def _text(data, span: tuple[int, int]) -> str:
    return bytes(data[span[0] : span[1]]).decode("utf-8", "replace")


def _walk_model(data, start: int, end: int, refs: list[ExternalRef]) -> None:
    for number, wire, value in iter_fields(data, start, end):
        if number == 7 and wire == LENGTH:  # graph
            _walk_graph(data, *value, refs, 1)
        elif number == 25 and wire == LENGTH:  # functions
            for fn_number, fn_wire, fn_value in iter_fields(data, *value):
                if fn_number == 7 and fn_wire == LENGTH:  # FunctionProto.node
                    _walk_node(data, *fn_value, refs, 1)


def _walk_graph(data, start: int, end: int, refs: list[ExternalRef], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise WireError("subgraphs nested too deeply")
    for number, wire, value in iter_fields(data, start, end):
        if wire != LENGTH:
            continue
        if number == 1:  # node
            _walk_node(data, *value, refs, depth)
        elif number == 5:  # initializer
            _walk_tensor(data, *value, refs)
        elif number == 15:  # sparse_initializer
            _walk_sparse(data, *value, refs)


def _walk_node(data, start: int, end: int, refs: list[ExternalRef], depth: int) -> None:
    for number, wire, value in iter_fields(data, start, end):
        if number != 5 or wire != LENGTH:  # attribute
            continue
        for a_number, a_wire, a_value in iter_fields(data, *value):
            if a_wire != LENGTH:
                continue
            if a_number in (5, 10):  # t, tensors
                _walk_tensor(data, *a_value, refs)
            elif a_number in (6, 11):  # g, graphs
                _walk_graph(data, *a_value, refs, depth + 1)
            elif a_number in (22, 23):  # sparse_tensor, sparse_tensors
                _walk_sparse(data, *a_value, refs)


def _walk_sparse(data, start: int, end: int, refs: list[ExternalRef]) -> None:
    for number, wire, value in iter_fields(data, start, end):
        if number in (1, 2) and wire == LENGTH:  # values, indices
            _walk_tensor(data, *value, refs)


def _walk_tensor(data, start: int, end: int, refs: list[ExternalRef]) -> None:
    name, location, entries = "?", 0, {}
    for number, wire, value in iter_fields(data, start, end):
        if number == 8 and wire == LENGTH:
            name = _text(data, value)
        elif number == 14 and wire == VARINT:
            location = value
        elif number == 13 and wire == LENGTH:
            key = val = ""
            for e_number, e_wire, e_value in iter_fields(data, *value):
                if e_wire == LENGTH and e_number == 1:
                    key = _text(data, e_value)
                elif e_wire == LENGTH and e_number == 2:
                    val = _text(data, e_value)
            entries[key] = val
    if location != _EXTERNAL and not entries:
        return
    if not entries.get("location"):
        raise WireError(f"tensor {name!r} has external data without a location")
    refs.append(ExternalRef(name, entries["location"], _non_negative(entries.get("offset", "0"), name),
                            _non_negative(entries["length"], name) if "length" in entries else None))


def _non_negative(text: str, tensor: str) -> int:
    if not text.isdigit() or len(text) > 20:
        raise WireError(f"tensor {tensor!r} has external data offset/length {text!r}, not a non-negative integer")
    return int(text)
