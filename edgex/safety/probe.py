"""Parse an untrusted model file in a child process: a native crash there is exit 65, not a dead CLI.

The parent runs `python -m edgex.safety.probe FORMAT PATH`; the child opens the file with the
library that will later read it (onnx checker, LiteRT, OpenVINO, h5py), prints a JSON summary on
stdout, or one `probe-error:` line on stderr. Pickles are never unpickled here: a child that runs
a model's code is still running it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from edgex.errors import DataError
from edgex.safety import sniff

_ERROR_PREFIX = "probe-error: "
DEFAULT_TIMEOUT_S = 600


def parse_in_child(path: Path, fmt: str, timeout: float = DEFAULT_TIMEOUT_S, probe: str | None = None) -> dict:
    """Parse `path` as `fmt` in a child (with `probe`, that parser instead, the file still named as `fmt`);
    return its summary or raise DataError naming the file."""
    argv = [sys.executable, "-m", "edgex.safety.probe", probe or fmt, str(path)]
    return run_probe(argv, Path(path), fmt, timeout)


def run_probe(argv: list[str], path: Path, fmt: str, timeout: float = DEFAULT_TIMEOUT_S) -> dict:
    """Run a probe command and turn its outcome (summary, error line, signal, hang) into a result or DataError."""
    try:
        done = run_child(argv, timeout)
    except subprocess.TimeoutExpired as exc:
        raise DataError(f"parsing {path} as {sniff.describe(fmt)} did not finish in {timeout:.0f} s",
                        "The file may be crafted to hang the parser; do not use it.") from exc
    if done.returncode < 0:
        raise DataError(f"parsing {path} as {sniff.describe(fmt)} crashed the parser ({signal_name(done.returncode)})",
                        "The file is corrupt or crafted; re-export or re-download it.")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith(_ERROR_PREFIX)]
        reason = lines[-1][len(_ERROR_PREFIX):] if lines else f"the parser exited with status {done.returncode}"
        raise DataError(f"{path} is not a valid {sniff.describe(fmt, article=False)}: {reason}",
                        "Re-export or re-download it.")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    except json.JSONDecodeError:
        return {}


def run_child(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """A child that touches an untrusted file: output captured, no stdin, TensorFlow quiet, no faulthandler
    dump (a crash is reported by its signal). Raises subprocess.TimeoutExpired past `timeout`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONFAULTHANDLER="")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def signal_name(returncode: int) -> str:
    """SIGSEGV for a child killed by signal 11 (returncode -11)."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


# -- child side ---------------------------------------------------------------------------------


def _parse_onnx(path: Path) -> dict:
    import onnx
    from onnx import numpy_helper

    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    for initializer in model.graph.initializer:
        if initializer.data_location != onnx.TensorProto.EXTERNAL:
            _no_nan(initializer.name, numpy_helper.to_array(initializer))
    return {"inputs": [_onnx_value(v) for v in model.graph.input], "outputs": [_onnx_value(v) for v in
                                                                               model.graph.output]}


def _onnx_value(value) -> dict:
    dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
    return {"name": value.name, "shape": dims}


def _parse_tflite(path: Path) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return {"inputs": [_tflite_value(d) for d in interpreter.get_input_details()],
            "outputs": [_tflite_value(d) for d in interpreter.get_output_details()]}


def _tflite_value(detail: dict) -> dict:
    import numpy as np

    return {"name": detail["name"], "shape": [int(x) for x in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name}


def _parse_openvino(path: Path) -> dict:
    import openvino as ov

    model = ov.Core().read_model(str(path), str(path.with_suffix(".bin")))
    for op in model.get_ops():
        if op.get_type_name() == "Constant" and op.get_output_element_type(0) in (ov.Type.f16, ov.Type.f32):
            _no_nan(op.get_friendly_name(), op.get_data())
    return {"inputs": [{"name": p.get_any_name(), "shape": str(p.get_partial_shape())} for p in model.inputs],
            "outputs": [{"name": p.get_any_name(), "shape": str(p.get_partial_shape())} for p in model.outputs]}


def _walk_hdf5(handle) -> dict:

    count = 0

    def visit(name, obj):
        nonlocal count
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            _no_nan(name, obj[()])  # read every dataset: exercises the whole parser
            count += 1

    handle.visititems(visit)
    return {"datasets": count}


def _parse_keras(path: Path) -> dict:
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if "model.weights.h5" not in names:
            return {"weights": None}
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as handle:
            return _walk_hdf5(handle)


def _parse_hdf5(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as handle:
        return _walk_hdf5(handle)


def _hdf5_attrs(path: Path) -> dict:
    """Only the Keras attributes (which Keras wrote it), for a refusal message: no dataset is read."""
    import h5py

    with h5py.File(path, "r") as handle:
        value = handle.attrs.get("keras_version")
    return {"keras_version": value.decode() if isinstance(value, bytes) else value}


def _safetensors_header(path: Path) -> tuple[dict, int]:
    """The header and where the tensor bytes start, every tensor's offsets checked against the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if header_len > min(size - 8, 100 << 20):
            raise ValueError("header length is past the end of the file")
        header = json.loads(f.read(header_len))
    data_bytes = size - 8 - header_len
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        if not 0 <= start <= end <= data_bytes:
            raise ValueError(f"tensor {name!r} needs bytes {start}..{end} of {data_bytes}")
    return header, 8 + header_len


def _parse_safetensors(path: Path) -> dict:
    header, _ = _safetensors_header(path)
    return {"tensors": len(header) - ("__metadata__" in header)}


def _saved_model_contents(path: Path) -> dict:
    """The graph protobuf parsed, its operations known to this TensorFlow, every variable read (CRC32C-checked
    by the checkpoint reader) and free of NaN. Nothing of the model runs."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    ops, functions = set(), set()
    for meta in proto.meta_graphs:
        ops |= {node.op for node in meta.graph_def.node}
        for function in meta.graph_def.library.function:
            functions.add(function.signature.name)
            ops |= {node.op for node in function.node_def}
    unknown = sorted(op for op in ops - functions if op_def_registry.get(op) is None)
    if unknown:
        raise ValueError(f"its graph uses operations this TensorFlow does not know: {', '.join(unknown[:3])}")
    variables = 0
    if (path / "variables" / "variables.index").exists():
        reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
        for name in sorted(reader.get_variable_to_shape_map()):
            _no_nan(name, reader.get_tensor(name))
            variables += 1
    return {"meta_graphs": len(proto.meta_graphs), "operations": len(ops), "variables": variables}


def _safetensors_contents(path: Path) -> dict:
    """Every float tensor free of NaN."""
    import numpy as np

    dtypes = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
    header, base = _safetensors_header(path)
    scanned = 0
    with open(path, "rb") as f:
        for name, entry in sorted(header.items(), key=lambda item: str(item[0])):
            if name == "__metadata__" or entry.get("dtype") not in dtypes:
                continue
            start, end = entry["data_offsets"]
            f.seek(base + start)
            _no_nan(name, np.frombuffer(f.read(end - start), dtype=dtypes[entry["dtype"]]))
            scanned += 1
    return {"float_tensors": scanned}


def _tflite_contents(path: Path) -> dict:
    """Every float32/float16 constant tensor free of NaN, read with LiteRT's own flatbuffer schema (LiteRT's
    parse was the gate's; no TensorFlow import: a second, not five)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16}
    scanned = 0
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            if tensor.Type() not in dtypes or not 0 < tensor.Buffer() < model.BuffersLength():
                continue
            data = model.Buffers(tensor.Buffer()).DataAsNumpy()  # 0, not an array, when the buffer is empty
            if isinstance(data, np.ndarray) and data.size:
                name = (tensor.Name() or b"").decode(errors="replace")
                _no_nan(name, data.view(dtypes[tensor.Type()]))
                scanned += 1
    return {"float_constants": scanned}


def _no_nan(name: str, values) -> None:
    """A float weight holding NaN is damage (an infinite one can be by design: a max-pool's -inf padding)."""
    import numpy as np

    values = np.asarray(values)
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(f"weight {name!r} holds {int(np.isnan(values).sum())} NaN value(s)")


_PARSERS = {sniff.ONNX: _parse_onnx, sniff.TFLITE: _parse_tflite, sniff.OPENVINO_IR: _parse_openvino,
            sniff.KERAS: _parse_keras, sniff.HDF5: _parse_hdf5, sniff.SAFETENSORS: _parse_safetensors,
            "hdf5_attrs": _hdf5_attrs, "saved_model_contents": _saved_model_contents,
            "safetensors_contents": _safetensors_contents, "tflite_contents": _tflite_contents}


def main(argv: list[str]) -> int:
    fmt, path = argv[0], Path(argv[1])
    parser = _PARSERS.get(fmt)
    try:
        summary = parser(path) if parser is not None else {}
    except ImportError as exc:
        summary = {"skipped": f"parser not installed ({exc.name})"}
    except Exception as exc:  # any parser failure is bad data, reported in one line
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        sys.stderr.write(f"{_ERROR_PREFIX}{message}\n")
        return 65
    sys.stdout.write(json.dumps(summary, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
