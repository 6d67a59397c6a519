"""Static pickle inspection: which callables would unpickling import, found without unpickling.

`torch.load(weights_only=True)` refuses anything but tensors and containers; this scanner applies
the same rule before torch (or anything) is imported, so a pickle whose `__reduce__` calls
`os.system` is refused and nothing runs. Only opcodes are read, with `pickletools.genops`.
"""

from __future__ import annotations

import io
import pickletools

# Globals a weights-only (state_dict) PyTorch checkpoint needs, mirroring torch's weights_only allowlist.
_SAFE_EXACT = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"), ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._tensor", "_rebuild_from_type_v2"), ("torch.serialization", "_get_layout"), ("torch", "Size"),
    ("torch", "device"), ("_codecs", "encode"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "bytearray"), ("builtins", "complex"), ("torch.nn.parameter", "Parameter"),
    ("__builtin__", "set"), ("__builtin__", "frozenset"), ("__builtin__", "bytearray"),
}
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
               "STRING"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}


class PickleError(ValueError):
    """The bytes are not a readable pickle."""


def pickle_globals(data: bytes) -> list[str]:
    """Every `module.name` the pickle(s) would import, in order; '?' where the name is computed.

    Legacy `torch.save` files are several pickles back to back followed by raw tensor bytes, so
    every pickle that follows is read too; a later one that breaks off still reports what it named
    before the break (an unpickler would have run those opcodes before failing).
    """
    found: list[str] = []
    stream = io.BytesIO(data)
    first = True
    while first or data[stream.tell() : stream.tell() + 1] == b"\x80":
        try:
            _scan_one(stream, found)
        except (ValueError, EOFError, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
            if first:
                raise PickleError(f"not a readable pickle ({exc})") from exc
            break
        first = False
    return found


def _scan_one(stream: io.BytesIO, found: list[str]) -> None:
    recent: list[object] = []
    memo: dict[int, object] = {}
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name in _STRING_OPS:
            recent.append(arg if isinstance(arg, str) else bytes(arg).decode("latin-1"))
        elif name in _MEMO_PUT:
            memo[arg] = recent[-1] if recent else None
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in _MEMO_GET:
            recent.append(memo.get(arg))
        elif name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", ".", 1))
        elif name == "STACK_GLOBAL":
            module, attr = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
            ok = isinstance(module, str) and isinstance(attr, str)
            found.append(f"{module}.{attr}" if ok else "?")
        elif name not in ("PROTO", "FRAME"):
            recent.append(None)


def is_weights_only_safe(qualified: str) -> bool:
    if qualified == "?" or "." not in qualified:
        return False
    module, name = qualified.rsplit(".", 1)
    if (module, name) in _SAFE_EXACT:
        return True
    # Storage classes and dtypes: torch.FloatStorage, torch.float32, ...
    return module == "torch" and (name.endswith("Storage") or name in _TORCH_DTYPES)


_TORCH_DTYPES = {"float32", "float16", "bfloat16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool",
                 "qint8", "quint8", "qint32", "complex64", "complex128"}


def unsafe_globals(data: bytes) -> list[str]:
    """The globals a weights-only load would refuse (empty for a plain state_dict)."""
    return sorted({g for g in pickle_globals(data) if not is_weights_only_safe(g)})
