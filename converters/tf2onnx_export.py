"""SavedModel -> ONNX with tf2onnx in two child processes, so neither holds the other's memory.

tf2onnx's CLI keeps the loaded SavedModel, its frozen copy and grappler's output alive while it builds
the ONNX graph, and deep-copies that graph before each of its optimizers: 5.4 GB peak for Xception.
Here one child freezes and optimizes the graph (tf2onnx's own `from_saved_model`) and writes the
GraphDef; a second child converts it (tf2onnx's `_convert_common`, as the CLI calls it) without the
per-optimizer copies (TF2ONNX_CATCH_ERRORS set), and again with them if an optimizer fails.

A small SavedModel (under TF2ONNX_ONE_CHILD_MB) does both in one child: the memory split does not matter
there, and a TensorFlow import (about 3 s) does.

    python -m edgex.converters.tf2onnx_export freeze SAVED_MODEL GRAPH.pb
    python -m edgex.converters.tf2onnx_export convert GRAPH.pb OUT.onnx OPSET
    python -m edgex.converters.tf2onnx_export both SAVED_MODEL GRAPH.pb OUT.onnx OPSET
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CATCH_ERRORS_ENV = "TF2ONNX_CATCH_ERRORS"  # tf2onnx reads "set" as "do not catch" (convert.py)


def freeze(saved_model: Path, graph_path: Path) -> None:
    """Frozen, grappler-optimized GraphDef of the serving signature, with its input/output names beside it."""
    from tf2onnx import tf_loader

    graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
        str(saved_model), None, None, None, ["serving_default"], None, False,
        return_initialized_tables=True, return_tensors_to_rename=True)
    if tables:
        raise SystemExit("the model has lookup tables; the one-process tf2onnx path handles them")
    graph_path.write_bytes(graph_def.SerializeToString())
    graph_path.with_suffix(".json").write_text(json.dumps({"inputs": inputs, "outputs": outputs,
                                                           "renames": renames}))


def convert(graph_path: Path, out: Path, opset: int) -> None:
    """The GraphDef to ONNX, as tf2onnx's CLI converts a SavedModel after loading it."""
    import tensorflow as tf
    from tf2onnx.convert import _convert_common

    names = json.loads(graph_path.with_suffix(".json").read_text())
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    with tf.device("/cpu:0"):
        _convert_common(graph_def, name=str(graph_path), continue_on_error=False, opset=opset,
                        input_names=names["inputs"], output_names=names["outputs"],
                        tensors_to_rename=names["renames"], output_path=str(out))


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if argv[:1] == ["freeze"] and len(argv) == 3:
        freeze(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["convert"] and len(argv) == 4:
        convert(Path(argv[1]), Path(argv[2]), int(argv[3]))
    elif argv[:1] == ["both"] and len(argv) == 5:
        freeze(Path(argv[1]), Path(argv[2]))
        convert(Path(argv[2]), Path(argv[3]), int(argv[4]))
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
