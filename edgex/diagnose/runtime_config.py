"""The configuration users run, against the one the per-layer analysis can look inside.

- ONNX: ORT's default session (fused QLinear kernels) against the unoptimized QDQ graph, per fused node
  (edgex.diagnose.fused), natively or on an emulated CPU.
- TFLite: the XNNPACK delegate (LiteRT's default) against the builtin reference kernels, at the output.
- OpenVINO: the compiled model as users run it (int8 kernels, and the plugin's default inference precision,
  bf16 on AMX or AVX512_BF16 CPUs, where it applies) against the f32 run measured per layer, at the output.
Divergence is measured as the error one node adds to what its inputs already carried.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.diagnose.metrics import ErrorStats, agreement, rounded
from edgex.diagnose.names import primary_layer

DIVERGES_DB = 20.0  # a node adding noise above 1% of its output's energy (10% relative error) parts the sessions


def onnx_fused(model_path: Path, samples: list[np.ndarray], emulate_cpu: str | None = None,
               edit: Callable[[object], None] | None = None) -> dict:
    """Raw fused-vs-unfused comparison (edgex.diagnose.fused.compare), emulated when `emulate_cpu` is set."""
    if emulate_cpu:
        from edgex.diagnose.emulate import fused_emulated

        return fused_emulated(Path(model_path), samples, emulate_cpu)
    from edgex.diagnose.fused import compare

    return compare(Path(model_path), samples, edit)


def fused_section(raw: dict, layers: dict[str, str], source_logits: np.ndarray | None) -> dict:
    """The report's ONNX runtime section: output figures, and every compared node, worst first."""
    outputs = {k: np.asarray(v, np.float32).reshape(len(v), -1) for k, v in raw["outputs"].items()}
    ratio: dict[str, float | None] = {}
    nodes = []
    for position, node in enumerate(raw["nodes"]):
        stats = ErrorStats.from_dict(node["stats"])
        ratio[node["node"]] = stats.noise_ratio
        upstream = [ratio.get(name) for name in node["inputs"]]
        added = None
        if stats.comparable and all(r is not None for r in upstream):
            added = ErrorStats(signal=1.0, noise=max(stats.noise_ratio - max(upstream, default=0.0), 0.0), samples=1)
        keras = primary_layer(node.get("names") or node["original"], layers)
        nodes.append({"node": node["node"], "op": node["op"], "original": node["original"],
                      "original_op": node["original_op"], "keras_layer": keras, "position": position,
                      **stats.summary(),
                      "added_sqnr_db": rounded(added.sqnr_db) if added else None,
                      "added_rel_error": rounded(added.rel_error, 4) if added else None})
    for row in nodes:
        row["diverges"] = row["added_sqnr_db"] is not None and row["added_sqnr_db"] < DIVERGES_DB
    nodes.sort(key=lambda r: (r["added_sqnr_db"] if r["added_sqnr_db"] is not None else math.inf, r["position"]))
    parted = sorted((r for r in nodes if r["diverges"]), key=lambda r: r["position"])
    output = ErrorStats.from_dict(raw["output"]).summary(agreement(outputs["unfused"], outputs["fused"]))
    section = {
        "kind": "onnx-fused",
        "config": "onnxruntime default session (ORT_ENABLE_ALL: fused QLinear kernels) vs ORT_DISABLE_ALL (QDQ)",
        "onnxruntime": raw.get("onnxruntime"), "emulated_cpu": raw.get("emulated_cpu"),
        "diverges_below_db": DIVERGES_DB,
        "output": output, "first_parting": parted[0]["node"] if parted else None,
        "diverging": [r["node"] for r in nodes if r["diverges"]], "nodes": nodes,
    }
    if source_logits is not None:
        section["vs_source"] = {"fused_agreement": rounded(agreement(source_logits, outputs["fused"]), 4),
                                "unfused_agreement": rounded(agreement(source_logits, outputs["unfused"]), 4)}
    return section


def tflite_section(model_path: Path, samples: list[np.ndarray], users: np.ndarray) -> dict:
    """XNNPACK (what users run) against LiteRT's builtin reference kernels, at the model output."""
    from edgex.diagnose.tflite import reference_kernel_outputs

    builtin = reference_kernel_outputs(model_path, samples)
    return _output_section("tflite-xnnpack", "LiteRT with XNNPACK (default) vs builtin reference kernels",
                           builtin, users)


def openvino_section(analysed: list[np.ndarray], users: np.ndarray, info: dict) -> dict:
    """The compiled model users run (LPT int8 kernels, the plugin's default precision elsewhere; what ran read
    from its runtime graph by the adapter, `info`) against the f32 run the per-layer table measures."""
    layers = info.get("compute_layer_precisions") or {}
    ran = ", ".join(f"{count} {name}" for name, count in sorted(layers.items())) or info.get("precision_ran")
    section = _output_section("openvino-precision", f"OpenVINO CPU as users run it (compute layers: {ran}; "
                              f"precision hint {info.get('inference_precision')}) vs the per-layer run "
                              "(INFERENCE_PRECISION_HINT=f32, FakeQuantize outputs exposed)",
                              np.concatenate([np.asarray(a, np.float32).reshape(1, -1) for a in analysed]), users)
    section.update(inference_precision=info.get("inference_precision"), compute_layer_precisions=layers)
    return section


def _output_section(kind: str, config: str, reference: np.ndarray, users: np.ndarray) -> dict:
    stats = ErrorStats()
    for ref, cand in zip(reference, users, strict=True):
        stats.add(ref, cand)
    return {"kind": kind, "config": config, "output": stats.summary(agreement(reference, users)), "nodes": []}
