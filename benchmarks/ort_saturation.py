"""Which ONNX Runtime int8 kernels saturate on x86 without VNNI: one QDQ conv per op kind, fused vs unfused.

    .venv/bin/python benchmarks/ort_saturation.py                              # this CPU
    qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/ort_saturation.py     # an AVX2-only CPU (emulated)

Each model is Q -> DQ -> Conv -> Q -> DQ on an all-ones uint8 input with large same-sign int8 weights
(the worst case for int16 pair sums). ORT_DISABLE_ALL runs the float Conv between the QDQ pairs;
ORT's default (ORT_ENABLE_ALL) fuses it into QLinearConv, whose AVX2 U8S8 kernel adds two u8*s8
products in a saturating int16 (VPMADDUBSW) where VNNI accumulates in int32. Prints the largest
difference between the two sessions relative to the output range, with 8-bit and with 7-bit weights.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

CHANNELS = 64


def qdq_conv(kind: str, weight_bits: int, rng: np.random.Generator) -> bytes:
    c = CHANNELS
    wshape, group, k = {"pointwise 1x1": ((64, c, 1, 1), 1, 1), "full 3x3": ((64, c, 3, 3), 1, 3),
                        "depthwise 3x3": ((c, 1, 3, 3), c, 3)}[kind]
    limit = 127 if weight_bits == 8 else 63
    weights = rng.integers(limit - 20, limit + 1, wshape).astype(np.int8)
    out_scale = (c if group == 1 else 1) * k * k * limit / 127 / 255
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["y"], group=group, pads=[k // 2] * 4),
             helper.make_node("QuantizeLinear", ["y", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["out"])]
    inits = [numpy_helper.from_array(np.array(1 / 255, np.float32), "xs"),
             numpy_helper.from_array(np.array(0, np.uint8), "xz"), numpy_helper.from_array(weights, "w"),
             numpy_helper.from_array(np.array(1 / 127, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(out_scale, np.float32), "ys"),
             numpy_helper.from_array(np.array(0, np.uint8), "yz")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def main() -> None:
    import platform

    from edgex.isa import isa_class

    rng = np.random.default_rng(0)
    x = np.ones((1, CHANNELS, 8, 8), np.float32)
    print(f"onnxruntime {ort.__version__}, {platform.machine()}, CPU class {isa_class()}")
    for kind in ("pointwise 1x1", "full 3x3", "depthwise 3x3"):
        for bits in (8, 7):
            model, out = qdq_conv(kind, bits, rng), {}
            for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_ALL"):
                options = ort.SessionOptions()
                options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
                session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
                out[level] = session.run(None, {"x": x})[0]
            unfused = out["ORT_DISABLE_ALL"]
            rel = np.abs(out["ORT_ENABLE_ALL"] - unfused).max() / np.abs(unfused).max()
            print(f"{kind:14s} {bits}-bit weights: fused vs unfused, max difference {rel:6.1%} of the output range")


if __name__ == "__main__":
    main()
