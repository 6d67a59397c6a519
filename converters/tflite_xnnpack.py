"""Shape an int8 TFLite graph so XNNPACK runs all of it in one partition.

Xception applies a standalone ReLU to each residual sum before the next block (`add -> relu ->
separable conv`). XNNPACK delegates RELU for float tensors only, so in an int8 graph every one of
those 11 ReLUs falls back to TFLite's reference kernel and cuts the graph into 12 XNNPACK
partitions, and int8 runs far slower than it could (the README's benchmarks give the numbers).
XNNPACK does take a quantized ADD with a fused ReLU, so each `relu(add(a, b))` becomes a second
`add(a, b)` with ReLU fused, writing the ReLU's tensor with its own quantization: the same values,
no precision lost, one extra cheap element-wise pass.
"""

from __future__ import annotations

import numpy as np


def fuse_relu_into_add(flat: bytes) -> tuple[bytes, int]:
    """Rewrite every RELU fed by an un-activated ADD as an ADD with a fused ReLU; returns (model, count)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    fused = 0
    for graph in model.subgraphs:
        producer = {int(t): op for op in graph.operators for t in op.outputs}
        for op in graph.operators:
            if codes[op.opcodeIndex] != schema.BuiltinOperator.RELU:
                continue
            add = producer.get(int(op.inputs[0]))
            if add is None or codes[add.opcodeIndex] != schema.BuiltinOperator.ADD:
                continue
            if add.builtinOptions is not None and add.builtinOptions.fusedActivationFunction:
                continue
            options = schema.AddOptionsT()
            options.fusedActivationFunction = schema.ActivationFunctionType.RELU
            op.opcodeIndex = add.opcodeIndex
            op.inputs = np.array(add.inputs, dtype=np.int32)
            op.builtinOptionsType = schema.BuiltinOptions.AddOptions
            op.builtinOptions = options
            fused += 1
    if not fused:
        return flat, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), fused


def xnnpack_partitions(path) -> int:
    """How many XNNPACK partitions LiteRT makes of the model (1 = everything delegated)."""
    from edgex.runtimes import litert_interpreter

    interpreter_cls, _ = litert_interpreter()
    interpreter = interpreter_cls(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    nodes = interpreter._interpreter  # LiteRT exposes node names only here
    return sum(nodes.NodeName(i) == "DELEGATE" for i in range(nodes.NumNodes()))
