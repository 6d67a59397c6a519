"""ONNX files as sources: the input contract read from the graph, the model run in ONNX Runtime.

An ONNX file says its input's layout and size (which axis holds the 3 colours, which dims are fixed)
but not its preprocessing, so scaling is Xception's x/127.5-1 unless --mean/--std say otherwise, and a
free spatial size is Xception's 299: both assumptions are printed. The parity reference is the file
itself in ONNX Runtime. Converters start from `float_graph`, a checked copy in the artifact's layout
(a leading Transpose when --layout differs from the graph's), with fixed spatial dims and every shape
inferred: ORT quantization and OpenVINO both read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgex.errors import DataError, MissingDependencyError
from edgex.options import XCEPTION_INPUT_SIZE
from edgex.preprocess import Preprocess

MIN_OPSET = 13  # ORT's per-channel QDQ quantization needs opset 13 (axis on QuantizeLinear)
_TO_NCHW, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


@dataclass
class OnnxModel:
    """An ONNX image classifier: its file, its one input as the graph declares it, a lazy ORT session."""

    path: Path
    input_name: str
    input_dims: tuple  # ints, None where the graph leaves a dimension free
    layout: str  # the layout the graph takes: "NHWC" or "NCHW"
    _session: object = field(default=None, repr=False)
    _graphs: dict = field(default_factory=dict, repr=False)

    def predict(self, batch: np.ndarray, layout: str) -> np.ndarray:
        """Outputs of the file in ONNX Runtime for a batch in `layout` (one image a call if the batch is fixed)."""
        x = batch if layout == self.layout else batch.transpose(_TO_NCHW if self.layout == "NCHW" else _TO_NHWC)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.input_dims[0] is None:
            return self._run(x)
        return np.concatenate([self._run(x[i : i + 1]) for i in range(len(x))])

    def _run(self, x: np.ndarray) -> np.ndarray:
        """ONNX Runtime with its default session options, as users run the file (a session of its own: the
        source is not an artifact, and edgex.runtimes reaches back into edgex.sources)."""
        if self._session is None:
            import onnxruntime as ort

            try:
                self._session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            except Exception as exc:  # ORT raises its own types: a bad source file is the user's data
                raise DataError(f"ONNX Runtime cannot load {self.path}: {str(exc)[:200]}",
                                "Re-export the model, or check it with: edgex check MODEL.onnx") from exc
        (out, *_) = self._session.run(None, {self.input_name: x})
        return np.asarray(out, dtype=np.float32)

    def float_graph(self, preprocess: Preprocess, folder: Path) -> Path:
        """The float graph converters start from: opset >= MIN_OPSET, input in `preprocess.layout` (same name),
        free spatial dims fixed to the contract's size, shapes inferred, checked; built once per contract."""
        key = (preprocess.layout, preprocess.height, preprocess.width)
        if key not in self._graphs:
            out = Path(folder) / f"float-{preprocess.layout.lower()}-{preprocess.height}x{preprocess.width}.onnx"
            _write_float_graph(self, preprocess, out)
            self._graphs[key] = out
        return self._graphs[key]


def _write_float_graph(model: OnnxModel, preprocess: Preprocess, out: Path) -> None:
    import onnx

    graph_model = onnx.load(str(model.path))  # contained external data was checked by edgex.safety
    graph_model = _at_least_opset(graph_model, model.path)
    graph = graph_model.graph
    (image,) = [i for i in graph.input if i.name == model.input_name]
    height, width = preprocess.height, preprocess.width
    spatial = (2, 3) if model.layout == "NCHW" else (1, 2)
    for axis, size in zip(spatial, (height, width), strict=True):
        image.type.tensor_type.shape.dim[axis].dim_value = size
    if preprocess.layout != model.layout:
        _transpose_input(graph, image, preprocess.layout)
    del graph.value_info[:]  # shapes recorded for the free dims; inferred afresh below
    try:
        graph_model = onnx.shape_inference.infer_shapes(graph_model, check_type=True, data_prop=True)
        onnx.checker.check_model(graph_model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise DataError(f"ONNX model {model.path} does not check at {height}x{width} {preprocess.layout}: "
                        f"{_first_line(exc)}", "Check --input-size/--layout against the model.") from exc
    onnx.save(graph_model, str(out))


def _at_least_opset(graph_model, path: Path):
    """The model at ONNX opset MIN_OPSET or later (upgraded by onnx's version converter when older)."""
    import onnx

    opset = next((o.version for o in graph_model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise DataError(f"ONNX model {path} imports no standard ONNX opset", "Re-export it with a standard opset.")
    if opset > onnx.defs.onnx_opset_version():
        raise DataError(f"ONNX model {path} uses opset {opset}, newer than this onnx package knows "
                        f"({onnx.defs.onnx_opset_version()})", "Re-export it with an older opset, or upgrade onnx.")
    if opset >= MIN_OPSET:
        return graph_model
    try:
        return onnx.version_converter.convert_version(graph_model, MIN_OPSET)
    except Exception as exc:  # the version converter raises untyped errors per op
        raise DataError(f"ONNX model {path} uses opset {opset}; upgrading it to {MIN_OPSET} for int8 failed: "
                        f"{_first_line(exc)}", f"Re-export it with opset {MIN_OPSET} or later.") from exc


def _transpose_input(graph, image, layout: str) -> None:
    """Make the graph take `layout`: the input keeps its name and feeds a Transpose to the graph's layout."""
    from onnx import helper

    inner = image.name + "__edgex_" + ("nhwc" if layout == "NCHW" else "nchw")
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == image.name:
                node.input[i] = inner
    perm = _TO_NHWC if layout == "NCHW" else _TO_NCHW  # from the new layout to the graph's own
    graph.node.insert(0, helper.make_node("Transpose", [image.name], [inner], perm=list(perm),
                                          name=image.name + "__edgex_layout"))
    dims = image.type.tensor_type.shape.dim
    old = [type(d)() for d in dims]
    for copy, d in zip(old, dims, strict=True):
        copy.CopyFrom(d)
    inverse = _TO_NCHW if layout == "NCHW" else _TO_NHWC  # new axis i holds the graph's axis inverse[i]
    for i in range(4):
        dims[i].CopyFrom(old[inverse[i]])


def read_contract(path: Path) -> tuple[OnnxModel, Preprocess, str, list[tuple[tuple[str, ...], str]]]:
    """(model, preprocessing, output kind, assumptions) read from the graph, before any session opens.

    Assumptions are (Preprocess fields, line): printed unless the user overrides one of those fields."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("ONNX sources need onnx and onnxruntime", "pip install 'edgex[onnx]'") from exc
    graph_model = onnx.load(str(path), load_external_data=False)
    graph = graph_model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise DataError(f"ONNX model {path} has {len(inputs)} input(s) and {len(graph.output)} output(s); edgex "
                        "converts image classifiers with one image input and one output",
                        "Export the classifier with one input and one output.")
    image = inputs[0]
    tensor = image.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim)
    if tensor.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4 or 3 not in (dims[1], dims[3]):
        shown = "x".join("?" if d is None else str(d) for d in dims) or "a scalar"
        kind = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "untyped"
        raise DataError(f"ONNX model {path} takes {kind} input {image.name!r} of shape {shown}; edgex converts "
                        "image classifiers whose input is a float32 batch (N, H, W, 3) or (N, 3, H, W)",
                        "Convert an image classifier.")
    if dims[0] not in (None, 1):
        raise DataError(f"ONNX model {path} has a fixed batch of {dims[0]}", "Export it with batch 1 or a free batch.")
    layout = "NHWC" if dims[3] == 3 else "NCHW"
    height, width = (dims[1], dims[2]) if layout == "NHWC" else (dims[2], dims[3])
    assumed = [(("mean", "std"), "scaling: x / 127.5 - 1, Xception's default (an ONNX file does not record its "
                                 "preprocessing); pass --mean/--std if the model was trained otherwise")]
    origin = {"inferred_from": "ONNX graph input", "layout": f"{layout}: the graph's input shape",
              "scaling": "x / 127.5 - 1: Xception's default, not recorded in the graph"}
    if height is None or width is None:
        height = height or XCEPTION_INPUT_SIZE
        width = width or XCEPTION_INPUT_SIZE
        origin["size"] = f"Xception default {height}x{width}: the graph's spatial size is free"
        assumed.append((("height", "width"), f"input size: the graph leaves it free; using Xception's {height}x{width} "
                                          "(pass --input-size to change it)"))
    preprocess = Preprocess(height=int(height), width=int(width), layout=layout, source=origin)
    model = OnnxModel(path=Path(path), input_name=image.name, input_dims=dims, layout=layout)
    return model, preprocess, output_kind(graph), assumed


def output_kind(graph) -> str:
    """'softmax' or 'sigmoid' when the graph's output comes from that op (through Identity), else 'logits'."""
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type == "Identity":
        node = producers.get(node.input[0])
    if node is not None and node.op_type in ("Softmax", "Sigmoid"):
        return node.op_type.lower()
    return "logits"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def float_graph(source) -> Path:
    """The checked float graph of an ONNX `source` in its current contract (layout, size): what converters read."""
    return source.model.float_graph(source.preprocess, source.work_dir())
