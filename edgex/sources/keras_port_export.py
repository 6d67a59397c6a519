"""A Keras Xception's fp32 ONNX graph through edgex's PyTorch port (edgex.sources.port), not tf2onnx.

tf2onnx needs the SavedModel, a frozen copy and grappler's output alive at once: on the 299x299 Xception
about 49 s and a 3.5 GB child beside edgex on 2 AVX2 cores. The port maps the same weights onto
edgex's PyTorch Xception in about 2 s and torch.onnx exports it in about 11 s, in-process. It is taken
only where it is exact: the Keras model has every layer the port knows, and the ported module's outputs
equal Keras's on seeded noise images within `PORT.tolerance`; anything else falls back to tf2onnx, and
the parity gate then checks every artifact against the Keras model as always.
"""

from __future__ import annotations

from pathlib import Path

from edgex.errors import DataError
from edgex.options import PORT

PORT_EXPORT_STEP = "torch.onnx.export of the PyTorch port"


def portable(source) -> bool:
    """Whether the source is a Keras model the port maps layer for layer (checks structure, reads no weights)."""
    if source.framework != "keras":
        return False
    from edgex.sources.port import collect_layers

    try:
        collect_layers(source.model)
    except (DataError, AttributeError, IndexError, TypeError):  # a layer the port does not know, or a bad fit
        return False
    return True


def export_via_port(source, out: Path, opset: int) -> str | None:
    """Write the fp32 ONNX graph of the ported module to `out`; None when written, else why the port was not
    taken (the caller falls back to tf2onnx and says so)."""
    from edgex.sources.port import keras_scopes, max_logit_difference, ported_module, verification_inputs
    from edgex.sources.pytorch import TorchModel
    from edgex.sources.torch_export import export_module_onnx

    try:
        found, config, module = ported_module(source)
        difference, _, _ = max_logit_difference(source, module, verification_inputs(source.preprocess, None),
                                                batch=1)
    except (DataError, RuntimeError, ValueError) as exc:  # shapes the port cannot map
        return f"the PyTorch port failed: {exc}"
    if not difference <= PORT.tolerance:
        return f"the PyTorch port differs from Keras by {difference:.3g} (> {PORT.tolerance})"
    output = "logits" if source.output_kind == "logits" else "probabilities"
    try:
        export_module_onnx(TorchModel(module), source.preprocess, out, opset, source.path, output_name=output,
                           traced=True)
    except DataError as exc:
        out.unlink(missing_ok=True)
        return exc.message
    name_like_keras(out, keras_scopes(found, config))
    return None


_WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


def name_like_keras(path: Path, scopes: dict[str, str]) -> None:
    """Rename each weighted op of the exported graph, and its output, by the Keras scope of its layer
    (`block2_sepconv1/separable_conv2d/depthwise/Conv`, `...:0`): what tf2onnx's graphs carry, and what `edgex
    diagnose` reads to name a Keras layer. The op's module path is in the dynamo exporter's `name_scopes`
    metadata, or in the TorchScript exporter's node name (`/inner/entry/entry.0/sep1/depthwise/Conv`)."""
    import ast

    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    fixed = {v.name for v in graph.input} | {v.name for v in graph.output}
    renamed: dict[str, str] = {}
    used: set[str] = set()
    for node in graph.node:
        meta = {prop.key: prop.value for prop in node.metadata_props}
        paths = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"]) if "pkg.torch.onnx.name_scopes" in meta \
            else _module_paths(node.name)
        scope = _keras_scope(paths, scopes)
        if node.op_type not in _WEIGHTED_OPS or scope is None:
            continue
        name, k = f"{scope}/{node.op_type}", 1
        while name in used:
            name, k = f"{scope}/{node.op_type}_{k}", k + 1
        used.add(name)
        node.name = name
        renamed.update({out: f"{name}:{i}" for i, out in enumerate(node.output) if out and out not in fixed})
    for node in graph.node:
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.output[:] = [renamed.get(n, n) for n in node.output]
    for info in graph.value_info:
        info.name = renamed.get(info.name, info.name)
    onnx.save(model, str(path))


def _module_paths(node_name: str) -> list[str]:
    """The module paths, outermost first, in a TorchScript-exported node's name: `/inner/entry/entry.0/sep1/Conv`
    -> inner, inner.entry.0, inner.entry.0.sep1 (a list's item repeats its parent's name with its index)."""
    parts: list[str] = []
    for segment in node_name.strip("/").split("/")[:-1]:
        if parts and segment.startswith(parts[-1].rsplit(".", 1)[-1] + "."):
            parts[-1] = parts[-1] + segment[segment.rfind("."):]
        else:
            parts.append(segment)
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _keras_scope(module_paths: list[str], scopes: dict[str, str]) -> str | None:
    """The deepest module path with a Keras scope (the layout adapter's `inner.` prefix removed)."""
    for module_path in reversed(module_paths):
        for candidate in (module_path, module_path.removeprefix("inner.")):
            if candidate in scopes:
                return scopes[candidate]
    return None
