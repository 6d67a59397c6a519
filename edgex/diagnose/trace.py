"""Keras layer -> node/op names in the sibling artifacts (the other formats built from the same source)."""

from __future__ import annotations

from pathlib import Path

from edgex.artifacts.publish import read_manifest
from edgex.diagnose.names import WEIGHTED, primary_layer


def trace_siblings(artifact: Path, layers: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """{format: {keras layer: [names]}} over every artifact beside `artifact` from the same source."""
    if not layers:
        return {}
    mine = read_manifest(artifact).get("source", {}).get("sha256")
    tables: dict[str, dict[str, list[str]]] = {}
    for folder in sorted(Path(artifact).parent.iterdir()):
        if not (folder / "manifest.json").is_file():
            continue
        manifest = read_manifest(folder)
        if manifest.get("source", {}).get("sha256") != mine or manifest["target"] in tables:
            continue
        path = folder / manifest["model_file"]
        reader = {"onnx": _onnx_names, "tflite": _tflite_names, "openvino": _openvino_names}.get(manifest["target"])
        if reader is None:
            continue
        try:
            tables[manifest["target"]] = reader(path, layers)
        except Exception:  # a sibling we cannot read only loses its column
            continue
    return tables


def _add(table: dict[str, list[str]], layer: str | None, name: str) -> None:
    if layer and name not in table.setdefault(layer, []):
        table[layer].append(name)


def _onnx_names(path: Path, layers: dict[str, str]) -> dict[str, list[str]]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    table: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        _add(table, primary_layer(";".join([node.name, *node.input[1:]]), layers), node.name)
    return table


def _tflite_names(path: Path, layers: dict[str, str]) -> dict[str, list[str]]:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    table: dict[str, list[str]] = {}
    for op in graph.operators:
        if len(op.outputs):
            name = (graph.tensors[op.outputs[0]].name or b"").decode()
            _add(table, primary_layer(name, layers), name)
    return table


def _openvino_names(path: Path, layers: dict[str, str]) -> dict[str, list[str]]:
    """An IR read from an ONNX QDQ graph (recipe qdq-w7) keeps the ONNX ops' Keras-scoped names; one converted
    from a SavedModel does not, so there weighted ops are matched to weighted Keras layers in graph order by kind
    (a SeparableConv2D is a GroupConvolution then a Convolution)."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    weighted = [op for op in model.get_ordered_ops()
                if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul")]
    named: dict[str, list[str]] = {}
    for op in weighted:
        _add(named, primary_layer(op.get_friendly_name(), layers), op.get_friendly_name())
    if named:
        return named
    expected: list[tuple[str, str]] = []
    for name, kind in layers.items():
        if kind == "SeparableConv2D":
            expected += [("GroupConvolution", name), ("Convolution", name)]
        elif kind == "DepthwiseConv2D":
            expected.append(("GroupConvolution", name))
        elif kind in ("Conv2D", "Conv1D", "Conv3D"):
            expected.append(("Convolution", name))
        elif kind == "Dense":
            expected.append(("MatMul", name))
    table: dict[str, list[str]] = {}
    used = [False] * len(expected)
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        for i, (want, layer) in enumerate(expected):
            if not used[i] and want == kind:
                used[i] = True
                _add(table, layer, op.get_friendly_name())
                break
    return table if any(kind in WEIGHTED for kind in layers.values()) else {}
