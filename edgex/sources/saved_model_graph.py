"""What a SavedModel's serving graph says about the model: its last real op (a Softmax head means
probabilities) and its variable names (Keras' Xception layer names), read without running it."""

from __future__ import annotations

_PASS_THROUGH = {"Identity", "IdentityN", "StopGradient", "Cast"}
_CALLS = {"StatefulPartitionedCall", "PartitionedCall"}
_KINDS = {"Softmax": "softmax", "Sigmoid": "sigmoid"}
_MAX_STEPS = 10_000


def output_kind(loaded) -> str:
    """'softmax' or 'sigmoid' when the serving signature's output comes from that op, else 'logits'."""
    try:
        op = last_op(loaded.signatures["serving_default"])
    except (KeyError, ValueError, AttributeError):
        return "logits"
    return _KINDS.get(op, "logits")


def last_op(function) -> str | None:
    """The type of the op that produces the signature's first output, through identities and function calls."""
    graph = function.graph.as_graph_def()
    library = {f.signature.name: f for f in graph.library.function}
    nodes = {node.name: node for node in graph.node}
    name = function.outputs[0].name  # "node:index" in the outer graph
    node_name, _, index = name.partition(":")
    node, where = nodes.get(node_name), nodes
    output = int(index or 0)
    for _ in range(_MAX_STEPS):
        if node is None:
            return None
        if node.op in _CALLS:
            inner = library.get(node.attr["f"].func.name)
            if inner is None:
                return None
            ret_name = inner.signature.output_arg[output].name
            where = {n.name: n for n in inner.node_def}
            node, output = _source(inner.ret[ret_name], where)
        elif node.op in _PASS_THROUGH and node.input:
            data_inputs = [i for i in node.input if not i.startswith("^")]
            node, output = _source(data_inputs[min(output, len(data_inputs) - 1)], where)
        else:
            return node.op
    return None


def _source(ref: str, nodes: dict):
    """The node and output index a tensor reference names: 'node', 'node:3' (graph) or 'node:out:2' (function)."""
    parts = ref.split(":")
    index = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 0
    return nodes.get(parts[0]), index


def variable_names(loaded) -> list[str]:
    """The variables' names with their layer prefix ('block1_conv1/kernel:0' -> 'block1_conv1')."""
    names = []
    for variable in getattr(loaded, "variables", []) or []:
        parts = variable.name.split("/")
        names.append(parts[-2] if len(parts) > 1 else parts[0])
    return names
