"""A minimal protobuf wire-format reader: enough to walk ONNX files without the onnx library.

Reading the raw wire format lets edgex inspect a hostile file (external data paths, truncation)
before any native parser sees it. Malformed input raises `WireError`, never anything else.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Decode one varint at `pos`; return (value, next position)."""
    value = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def iter_fields(buf: bytes | memoryview, start: int = 0, end: int | None = None,
                allow_truncated: bool = False) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """Yield (field number, wire type, value): an int for scalars, (start, end) for length-delimited fields.

    With `allow_truncated`, a length-delimited field running past `end` ends the walk quietly
    (used when only a prefix of a large file was read).
    """
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield number, wire, value
        elif wire == FIXED64:
            if pos + 8 > end:
                raise WireError("truncated fixed64 field")
            yield number, wire, int.from_bytes(bytes(buf[pos : pos + 8]), "little")
            pos += 8
        elif wire == FIXED32:
            if pos + 4 > end:
                raise WireError("truncated fixed32 field")
            yield number, wire, int.from_bytes(bytes(buf[pos : pos + 4]), "little")
            pos += 4
        elif wire == LENGTH:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                if allow_truncated:
                    return
                raise WireError(f"field {number} runs past the end of its message")
            yield number, wire, (pos, pos + length)
            pos += length
        else:
            raise WireError(f"unsupported wire type {wire}")
