"""`inspect(model)`: what edgex sees in a source model, without converting it.

Architecture (is it an Xception, which flows and how many middle blocks), inputs and outputs, the
inferred preprocessing and where it came from, the layers the inference graph bypasses, the class
names, and which targets are installed to take it.
"""

from __future__ import annotations

import re
from pathlib import Path

_XCEPTION_BLOCKS = re.compile(r"^block(\d+)_")


def xception_structure(names: list[str]) -> dict:
    """Entry/middle/exit flow from Keras' Xception layer names (block1..block14); empty blocks: not an Xception."""
    blocks = sorted({int(m.group(1)) for n in names if (m := _XCEPTION_BLOCKS.match(n))})
    if not blocks or blocks[0] != 1 or len(blocks) < 6:
        return {"is_xception": False, "blocks": blocks}
    last = blocks[-1]
    return {"is_xception": True, "blocks": len(blocks), "entry_flow": [b for b in blocks if b <= 4],
            "middle_blocks": len([b for b in blocks if 4 < b < last - 1]), "exit_flow": [last - 1, last]}


def _layer_names(model) -> list[str]:
    names = []
    for layer in getattr(model, "layers", []):
        names.append(layer.name)
        names += _layer_names(layer) if hasattr(layer, "layers") else []
    return names


def inspect(model_path: Path | None, trust_model: bool = False) -> dict:
    from edgex.conversion.build import describe_input
    from edgex.converters import TARGETS
    from edgex.sources.load import load_source

    source = load_source(model_path, trust_model=trust_model)
    try:
        info = {"model": str(source.path), "framework": source.framework, "name": source.name}
        if source.framework == "keras":
            model = source.model
            info["architecture"] = xception_structure(_layer_names(model))
            info["parameters"] = int(model.count_params())
            info["inputs"] = [{"name": t.name, "shape": list(t.shape)} for t in model.inputs]
            info["outputs"] = [{"name": t.name, "shape": list(t.shape)} for t in model.outputs]
        elif source.framework == "saved_model":
            from edgex.sources.saved_model_graph import variable_names

            names = variable_names(source.model)
            info["architecture"] = xception_structure(names) if names else {"is_xception": None}
            fn = source.model.signatures["serving_default"]
            info["inputs"] = [{"name": k, "shape": list(v.shape)} for k, v in fn.structured_input_signature[1].items()]
            info["outputs"] = [{"name": k, "shape": list(v.shape)} for k, v in fn.structured_outputs.items()]
        elif source.framework == "torch":
            info["architecture"] = {"is_xception": source.model.architecture == "xception",
                                    "module": source.model.architecture}
        info["load_notes"] = source.load_notes
        info["output_kind"] = source.output_kind
        info["preprocess"] = {**source.preprocess.to_dict(), "summary": describe_input(source.preprocess)}
        info["inference_graph"] = {"removed": source.removed_layers}
        info["classes"] = source.classes
        info["classes_found"] = source.classes is not None
        info["targets"] = {name: _target_status(t) for name, t in TARGETS.items()}
        return info
    finally:
        source.close()


def _target_status(info) -> dict:
    import importlib.util

    missing = [name for name in info.requires if importlib.util.find_spec(name) is None]
    return {"precisions": list(info.precisions), "ready": not missing,
            "install": f"pip install 'edgex[{info.extra}]'" if missing else None}


def render(info: dict) -> str:
    arch = info.get("architecture") or {}
    if arch.get("is_xception") and "middle_blocks" in arch:
        kind = (f"Xception: {arch['blocks']} blocks (entry flow {arch['entry_flow']}, {arch['middle_blocks']} middle "
                f"blocks, exit flow {arch['exit_flow']})")
    elif arch.get("is_xception"):
        kind = "Xception (edgex's PyTorch port)"
    elif arch.get("is_xception") is None:
        kind = "unknown (the SavedModel names no layers; edgex converts it all the same)"
    else:
        kind = "not an Xception (edgex converts it all the same; its tests and tuning target Xception)"
    lines = [f"model: {info['model']} ({info['framework']})", *info.get("load_notes", []),
             f"architecture: {kind}"]
    if "parameters" in info:
        lines.append(f"parameters: {info['parameters']:,}")
    for key in ("inputs", "outputs"):
        for t in info.get(key, []):
            lines.append(f"{key[:-1]}: {t['name']} {t['shape']}")
    lines.append(f"output kind: {info['output_kind']}")
    lines.append(f"preprocessing: {info['preprocess']['summary']}")
    origin = info["preprocess"].get("source") or {}
    lines += [f"  {k}: {v}" for k, v in origin.items() if k != "inferred_from"]
    removed = info["inference_graph"]["removed"]
    lines.append("bypassed at inference: " + (", ".join(f"{r['name']} ({r['type']})" for r in removed) or "nothing"))
    lines.append("classes: " + (", ".join(info["classes"]) if info["classes_found"] else
                                "not found (add MODEL.classes.json beside the model, or give convert --classes FILE)"))
    for name, status in info["targets"].items():
        lines.append(f"target {name}: " + (f"ready ({', '.join(status['precisions'])})" if status["ready"]
                                           else f"not installed: {status['install']}"))
    return "\n".join(lines)
