"""The gate every user-supplied model file passes before a framework opens it.

Order matters: existence, then what the bytes are (a misnamed file is named as what it is), then
the safety policy (formats that can run code need --trust-model), then format-specific structure
checks that need no library (ONNX external data, TFLite header, IR weight offsets, Keras config),
and last a full parse in a child process (`edgex.safety.probe`), so a native crash cannot take the
CLI down. Commands call `check_model_file` and get a `ModelFile` or a typed error.
"""

from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from edgex.errors import DataError, MissingInputError, RefusedError
from edgex.safety import sniff
from edgex.safety.pickle_scan import PickleError, unsafe_globals

# Formats whose loaders can execute code embedded in the file.
CODE_CARRYING = {sniff.HDF5, sniff.SAVED_MODEL, sniff.TORCHSCRIPT, sniff.PT2}
_TRUST_HINT = "Pass --trust-model only if you trust the file's author."
_MAX_PICKLE_BYTES = 256 << 20
_MAX_CONFIG_BYTES = 64 << 20


@dataclass
class ModelFile:
    """A model file that passed the checks: its path, sniffed format and what the child parse found."""

    path: Path
    format: str
    trusted: bool = False
    details: dict = field(default_factory=dict)


def check_model_file(path: Path | str, trust_model: bool = False, parse: bool = True,
                     formats: set[str] | None = None) -> ModelFile:
    """Sniff, apply the policy, validate structure and (with `parse`) parse in a child process.

    `formats` limits what the caller can use; anything else is reported after the safety checks,
    so a malicious file is refused as such even when it was passed to the wrong command.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise MissingInputError(f"model {path} does not exist", "Check the --model path.")
    if not path.exists():
        raise MissingInputError(f"model {path} is a broken symbolic link", "Point --model at the real file.")
    fmt = _sniff_checked(path)
    _apply_policy(path, fmt, trust_model)
    _check_structure(path, fmt, trust_model)
    if formats is not None and fmt not in formats:
        from edgex.errors import UsageError

        wanted = ", ".join(sorted(sniff.describe(f) for f in formats))
        raise UsageError(f"{path} is {sniff.describe(fmt)}; this command takes {wanted}")
    model = ModelFile(path=path, format=fmt, trusted=trust_model)
    if parse:
        from edgex.safety.probe import parse_in_child

        model.details = parse_in_child(path, fmt)
    return model


def _sniff_checked(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.is_dir():
        fmt = sniff.sniff_format(path)
        if fmt == sniff.SAVED_MODEL:
            return fmt
        if suffix in sniff.SUFFIX_FORMATS:
            raise DataError(f"{path} is a folder, not a {suffix} file", "Point --model at the model file itself.")
        raise DataError(f"{path} is a folder but not a SavedModel (no saved_model.pb)",
                        "Point --model at a model file or a SavedModel folder.")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file", "Point --model at a model file.")
    fmt = sniff.sniff_format(path)
    if fmt == sniff.EMPTY:
        raise DataError(f"model {path} is empty (0 bytes)", "Re-export or re-download it.")
    expected = sniff.SUFFIX_FORMATS.get(suffix)
    if fmt == sniff.UNKNOWN:
        what = f"not {sniff.describe(next(iter(expected)))}" if expected else "in no format edgex knows"
        raise DataError(f"model {path} is {what} (its bytes match no known model format; truncated or corrupt?)",
                        "Re-export or re-download it.")
    if expected is not None and fmt not in expected:
        hint = f"Rename it to {path.with_suffix(sniff.FORMAT_SUFFIX[fmt]).name}" if fmt in sniff.FORMAT_SUFFIX \
            else "Check that this is the file you meant"
        raise DataError(f"model {path} is misnamed: it holds {sniff.describe(fmt)}, not what {suffix} means",
                        hint + ".")
    return fmt


def _apply_policy(path: Path, fmt: str, trust_model: bool) -> None:
    if trust_model:
        return
    if fmt in CODE_CARRYING:
        if fmt == sniff.HDF5:
            version = hdf5_keras_version(path)
            written = f", written by Keras {version}," if version else ""
            raise RefusedError(f"{path} is {sniff.describe(fmt)}{written} which can run code when loaded",
                               hdf5_hint(version))
        raise RefusedError(f"{path} is {sniff.describe(fmt)}, which can run code when loaded", _TRUST_HINT)
    if fmt == sniff.PICKLE:
        with open(path, "rb") as f:  # legacy torch.save: pickles first, then raw tensor bytes (not needed)
            _refuse_unsafe_pickle(path, f.read(_MAX_PICKLE_BYTES))
    elif fmt == sniff.TORCH:
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.filename.endswith(".pkl"):
                        if info.file_size > _MAX_PICKLE_BYTES:
                            raise DataError(f"{path}: {info.filename} is {info.file_size} bytes, too large to "
                                            "inspect")
                        _refuse_unsafe_pickle(path, archive.read(info))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:  # bad CRC, cut
            raise DataError(f"PyTorch file {path} is a corrupt zip: {exc}", "Re-save or re-download it.") from exc


def hdf5_keras_version(path: Path) -> str | None:
    """The `keras_version` attribute of an HDF5 file, read by h5py in a child (the file is untrusted)."""
    from edgex.safety.probe import parse_in_child

    try:
        return parse_in_child(path, "hdf5_attrs", timeout=60).get("keras_version")
    except DataError:
        return None


def hdf5_hint(version: str | None) -> str:
    """How to go on with a refused .h5: what works depends on the Keras that wrote it."""
    trust = "Pass --trust-model only if you trust the file's author"
    if version and version.split(".")[0] == "3":
        return f"{trust}, or re-save it with Keras 3 as .keras (model.save('model.keras'))."
    return (f"{trust}, or re-save it as .keras with the TensorFlow 2.13+ (tf_keras) that wrote it "
            "(model.save('model.keras')): edgex reads a Keras 2 .keras without --trust-model.")


def _refuse_unsafe_pickle(path: Path, data: bytes) -> None:
    try:
        unsafe = unsafe_globals(data)
    except PickleError as exc:
        raise DataError(f"model {path} is a corrupt pickle: {exc}", "Re-export or re-download it.") from exc
    if unsafe:
        shown = ", ".join(unsafe[:3]) + (" ..." if len(unsafe) > 3 else "")
        raise RefusedError(f"{path} is a pickle that would import {shown} when loaded (not weights only)",
                           "Save a state_dict with torch.save(model.state_dict()), or pass --trust-model only if "
                           "you trust the file's author.")


def _check_structure(path: Path, fmt: str, trust_model: bool) -> None:
    if fmt == sniff.ONNX:
        from edgex.safety.onnx_external_data import check_external_data

        check_external_data(path)
    elif fmt == sniff.TFLITE:
        check_tflite_header(path)
    elif fmt == sniff.OPENVINO_IR:
        from edgex.safety.openvino_ir import check_ir_weights

        check_ir_weights(path)
    elif fmt == sniff.KERAS:
        check_keras_config(path, trust_model)


def check_tflite_header(path: Path) -> None:
    """The flatbuffer root table and its vtable must lie inside the file (a cheap pre-check of LiteRT's)."""
    data = Path(path).read_bytes()
    size = len(data)
    problem = None
    if size < 16:
        problem = f"only {size} bytes"
    else:
        (root,) = struct.unpack_from("<I", data, 0)
        if root + 4 > size:
            problem = f"root table offset {root} is past the end ({size} bytes)"
        else:
            (back,) = struct.unpack_from("<i", data, root)
            vtable = root - back
            if not 0 <= vtable <= size - 4:
                problem = "vtable offset outside the file"
            else:
                vt_size, table_size = struct.unpack_from("<HH", data, vtable)
                if vt_size < 4 or vtable + vt_size > size or root + table_size > size:
                    problem = "vtable or root table runs past the end"
    if problem:
        raise DataError(f"TFLite model {path} is truncated or corrupt ({problem})", "Re-export or re-download it.")


def check_keras_config(path: Path, trust_model: bool) -> None:
    """Refuse Lambda layers and classes from outside Keras before Keras (or TensorFlow) is imported."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > _MAX_CONFIG_BYTES:
                raise DataError(f"{path}: config.json is {info.file_size} bytes, too large to be a model config")
            config = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, RecursionError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"Keras model {path} is corrupt: {exc}", "Re-save or re-download it.") from exc
    if trust_model:
        return
    for node in _walk(config):
        if node.get("class_name") == "Lambda" or node.get("class_name") == "__lambda__":
            raise RefusedError(f"{path} contains a Lambda layer (arbitrary code); refused in safe mode",
                               _TRUST_HINT)
        module = node.get("module")
        if isinstance(module, str) and module.split(".")[0] not in ("keras", "tf_keras", "builtins"):
            raise RefusedError(f"{path} refers to {module}.{node.get('class_name')}, code from outside Keras",
                               _TRUST_HINT)


def _walk(node, depth: int = 0):
    if depth > 200:
        raise DataError("Keras config nests too deeply")
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, depth + 1)
