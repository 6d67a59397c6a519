"""Tell a model file's format from its bytes, not its name.

A downloaded file named model.tflite may hold ONNX, a pickle or nothing at all. Sniffing reads a
few kilobytes (and a zip's central directory), never executes or decompresses anything large,
and never raises on odd content: unknown bytes are simply "unknown".
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgex.safety.protobuf_wire import LENGTH, VARINT, WireError, iter_fields

ONNX, TFLITE, OPENVINO_IR, KERAS, HDF5, SAVED_MODEL = "onnx", "tflite", "openvino_ir", "keras", "hdf5", "saved_model"
PICKLE, TORCH, TORCHSCRIPT, PT2, SAFETENSORS = "pickle", "torch", "torchscript", "pt2", "safetensors"
ZIP, UNKNOWN, EMPTY = "zip", "unknown", "empty"

FORMAT_NAMES = {
    ONNX: "an ONNX model", TFLITE: "a TFLite model", OPENVINO_IR: "an OpenVINO IR model",
    KERAS: "a Keras .keras archive", HDF5: "an HDF5 (legacy Keras .h5) file", SAVED_MODEL: "a TensorFlow SavedModel",
    PICKLE: "a Python pickle", TORCH: "a PyTorch checkpoint (torch.save zip)", TORCHSCRIPT: "a TorchScript archive",
    PT2: "a torch.export .pt2 archive", SAFETENSORS: "a safetensors file", ZIP: "a zip archive",
    UNKNOWN: "no known model format", EMPTY: "an empty file",
}

# Which sniffed formats each file name suffix may hold.
SUFFIX_FORMATS = {
    ".onnx": {ONNX}, ".tflite": {TFLITE}, ".lite": {TFLITE}, ".xml": {OPENVINO_IR}, ".keras": {KERAS},
    ".h5": {HDF5}, ".hdf5": {HDF5}, ".pt": {TORCH, TORCHSCRIPT, PICKLE}, ".pth": {TORCH, TORCHSCRIPT, PICKLE},
    ".pt2": {PT2}, ".pkl": {PICKLE}, ".pickle": {PICKLE}, ".safetensors": {SAFETENSORS},
}
# The usual suffix of each format, for "rename it to ..." hints.
FORMAT_SUFFIX = {ONNX: ".onnx", TFLITE: ".tflite", OPENVINO_IR: ".xml", KERAS: ".keras", HDF5: ".h5",
                 TORCH: ".pt", TORCHSCRIPT: ".pt", PT2: ".pt2", PICKLE: ".pkl", SAFETENSORS: ".safetensors"}

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_PREFIX_BYTES = 4096
# ModelProto field numbers (ir_version 1 ... functions 25) and their wire types.
_ONNX_MODEL_FIELDS = {1: VARINT, 2: LENGTH, 3: LENGTH, 4: LENGTH, 5: VARINT, 6: LENGTH, 7: LENGTH, 8: LENGTH,
                      14: LENGTH, 20: LENGTH, 25: LENGTH}
_MAX_ONNX_IR_VERSION = 64


def sniff_format(path: Path | str) -> str:
    """The format of a file or folder from its content; UNKNOWN when nothing matches."""
    path = Path(path)
    if path.is_dir():
        return SAVED_MODEL if (path / "saved_model.pb").is_file() else UNKNOWN
    try:
        with open(path, "rb") as f:
            head = f.read(_PREFIX_BYTES)
    except OSError:
        return UNKNOWN
    return sniff_bytes(head, path)


def sniff_bytes(head: bytes, path: Path | None = None) -> str:
    """The format of a file from its first bytes (and, for zips, its member names when `path` is given)."""
    if not head:
        return EMPTY
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return TFLITE
    if head.startswith(HDF5_MAGIC):
        return HDF5
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(path) if path is not None else ZIP
    if _looks_like_ir(head):
        return OPENVINO_IR
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    if _looks_like_safetensors(head, path):
        return SAFETENSORS
    if _looks_like_onnx(head):
        return ONNX
    return UNKNOWN


def _looks_like_ir(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return (text.startswith(b"<?xml") or text.startswith(b"<net")) and b"<net" in head


def _looks_like_safetensors(head: bytes, path: Path | None) -> bool:
    if len(head) < 10 or head[8:9] != b"{":
        return False
    header_len = int.from_bytes(head[:8], "little")
    size = path.stat().st_size if path is not None else len(head)
    return 2 <= header_len <= size - 8


def _looks_like_onnx(head: bytes) -> bool:
    """ONNX exporters write ir_version (field 1) first; every following field must be a ModelProto field."""
    try:
        fields = iter_fields(head, allow_truncated=True)
        number, wire, value = next(fields)
        if number != 1 or wire != VARINT or not 1 <= value <= _MAX_ONNX_IR_VERSION:
            return False
        for number, wire, _ in fields:
            if _ONNX_MODEL_FIELDS.get(number) != wire:
                return False
    except StopIteration:
        return False
    except WireError as exc:
        # A field cut by the end of the prefix read is fine; malformed bytes are not ONNX.
        return str(exc).startswith("truncated") and len(head) >= _PREFIX_BYTES
    return True


def _sniff_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return ZIP
    base = {name.rsplit("/", 1)[-1] for name in names}
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return KERAS
    if "archive_format" in base or any("/archive_format" in n or n.startswith("models/") for n in names):
        return PT2
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        return TORCHSCRIPT
    if "data.pkl" in base:
        return TORCH
    return ZIP


def describe(fmt: str, article: bool = True) -> str:
    """The format in words: "a TFLite model"; article=False gives "TFLite model" (for "not a valid ...")."""
    words = FORMAT_NAMES.get(fmt, fmt)
    if not article and words.split(" ", 1)[0] in ("a", "an") and " " in words:
        return words.split(" ", 1)[1]
    return words
