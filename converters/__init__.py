"""Converters, one module per target format, registered by name (installed as `edgex.converters`).

The table below is the one place that says which targets exist, which precisions each
builds, and which extra a user must install for it, so `--target` errors can list them.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from edgex.converters.base import Converter

from edgex.errors import MissingDependencyError, UsageError


@dataclass(frozen=True)
class TargetInfo:
    name: str
    module: str
    precisions: tuple[str, ...]
    extra: str
    requires: tuple[str, ...]
    runtime: str
    suffix: str


TARGETS: dict[str, TargetInfo] = {
    "onnx": TargetInfo("onnx", "edgex.converters.onnx", ("fp32", "int8"), "onnx",
                       ("tf2onnx", "onnx", "onnxruntime"), "onnxruntime", ".onnx"),
    "openvino": TargetInfo("openvino", "edgex.converters.openvino", ("fp32", "fp16", "int8"), "openvino",
                           ("openvino", "nncf"), "openvino", ".xml"),
    "tflite": TargetInfo("tflite", "edgex.converters.tflite", ("fp32", "fp16", "dynamic", "int8"), "tflite",
                         ("tensorflow", "ai_edge_litert"), "litert", ".tflite"),
}


def resolve_targets(target: str) -> list[TargetInfo]:
    """'all' or one target name -> the registry entries; unknown names get a did-you-mean."""
    if target == "all":
        return list(TARGETS.values())
    if target not in TARGETS:
        import difflib

        close = difflib.get_close_matches(target, TARGETS, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"unknown target {target!r}", f"{hint}Targets: {', '.join(TARGETS)}, all.")
    return [TARGETS[target]]


def check_installed(info: TargetInfo) -> None:
    """Fail early, naming the extra to install, when a target's packages are missing."""
    missing = [name for name in info.requires if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f"target {info.name!r} needs {', '.join(missing)}, which is not installed",
            f"pip install 'edgex[{info.extra}]'",
        )


def load_converter(info: TargetInfo) -> Converter:
    """The converter for a target (its module, imported only when used), which implements `Converter`."""
    return importlib.import_module(info.module)


def targets_for_source(targets: list[TargetInfo], source, named: bool) -> tuple[list[TargetInfo], list[tuple]]:
    """(targets that can start from this kind of source, [(target, UsageError) for the others]), asked of each
    converter's optional `source_refusal`. A target the user `named` that cannot is raised as a usage error."""
    kept, skipped = [], []
    for info in targets:
        refusal = getattr(load_converter(info), "source_refusal", lambda _source: None)(source)
        if refusal is None:
            kept.append(info)
        elif named:
            raise refusal
        else:
            skipped.append((info, refusal))
    return kept, skipped
