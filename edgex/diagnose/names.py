"""Keras layer names, read from a .keras file's config without importing Keras, and found in graph names.

Converters keep the Keras scope in tensor and node names
(`.../xception_1/block4_sepconv1_1/separable_conv2d`); Keras 3 adds a `_<n>` suffix to each scope,
so a name component maps to the layer it names with that suffix removed, or as written.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

WEIGHTED = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Dense", "Conv1D", "Conv3D")
_CONTAINERS = ("Functional", "Sequential", "Model")
_SUFFIX = re.compile(r"_\d+$")
_SPLIT = re.compile(r"[/;:]")


def keras_layers(model_path: Path | None) -> dict[str, str]:
    """{layer name: class name} of every layer, nested models included; {} when unreadable."""
    if model_path is None:
        return {}
    path = Path(model_path)
    try:
        if path.is_file() and path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        else:
            return {}
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return {}
    found: dict[str, str] = {}

    def walk(node: dict) -> None:
        for layer in node.get("config", {}).get("layers", []) or []:
            name = layer.get("config", {}).get("name")
            if name:
                found[name] = layer.get("class_name", "")
            walk(layer)

    walk(config)
    return found


def layers_in_name(name: str, layers: dict[str, str]) -> list[str]:
    """Keras layers named by the components of a graph name, in order, without repeats."""
    out: list[str] = []
    for part in _SPLIT.split(name):
        stripped = _SUFFIX.sub("", part)
        for candidate in (stripped, part):
            if candidate in layers and layers[candidate] not in _CONTAINERS and candidate not in out:
                out.append(candidate)
                break
    return out


def primary_layer(name: str, layers: dict[str, str]) -> str | None:
    """The layer a (possibly fused) op stands for: the weighted one if any, else the first named."""
    named = layers_in_name(name, layers)
    for layer in named:
        if layers[layer] in WEIGHTED:
            return layer
    return named[0] if named else None


def part_of_layer(name: str) -> str | None:
    """'depthwise' or 'pointwise' for the two halves of a separable convolution, else None."""
    if "/depthwise" in name:
        return "depthwise"
    if "separable_conv2d" in name:
        return "pointwise"
    return None


# Keras layers that are one graph op: the op's output tensor is the layer's output, so the source can be
# tapped there. Weighted layers and BatchNormalization are folded together by converters: no such tensor.
SINGLE_OP = ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Add", "Subtract", "Multiply", "Average",
             "Maximum", "Minimum", "Concatenate", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
             "GlobalMaxPooling2D", "Flatten", "Reshape")
_OUTPUT_INDEX = re.compile(r":\d+$")


def layer_output(name: str, layers: dict[str, str]) -> str | None:
    """The single-op Keras layer whose output the graph tensor `name` is: the layer's scope followed by
    exactly one op name (`.../block1_conv1_act_1/Relu:0`, TFLite's fused `...;...` names by their first
    part); None for anything inside a layer or unnamed."""
    parts = _OUTPUT_INDEX.sub("", name.split(";")[0]).split("/")
    if len(parts) < 2:
        return None
    scope = parts[-2]
    for candidate in (_SUFFIX.sub("", scope), scope):
        if layers.get(candidate) in SINGLE_OP:
            return candidate
    return None
