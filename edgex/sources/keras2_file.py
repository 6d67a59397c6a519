"""What a Keras 2 file (tf_keras `.h5` or `.keras`) holds, read without Keras: which Keras wrote it, the
model config, and every weight tensor keyed by its layer, with a check that none is left unread."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgex.errors import DataError

# How to get a file edgex can read when a layer has no Keras 3 counterpart here: with the TensorFlow 2.x
# that trained the model, a SavedModel (which edgex converts with --trust-model).
RESAVE_HINT = ("With the TensorFlow 2.x that wrote it, export a SavedModel (model.export('DIR')) and "
               "convert DIR with --trust-model.")
CONTAINERS = ("Functional", "Model", "Sequential")
_MAX_MESSAGE = 200


@dataclass
class Keras2File:
    """What a Keras 2 file holds: who wrote it, the model config and every weight tensor by layer."""

    path: Path
    keras_version: str
    config: dict
    # (top-level layer name, leaf layer name) -> [(variable name or None, array)] in the file's order
    tensors: dict[tuple[str, str], list[tuple[str | None, np.ndarray]]] = field(default_factory=dict)

    @property
    def tensor_count(self) -> int:
        return sum(len(v) for v in self.tensors.values())


def keras_version(path: Path) -> str | None:
    """The version of Keras that wrote `path` (.h5 attribute or .keras metadata.json); None when unstated."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if "metadata.json" not in archive.namelist():
                    return None
                metadata = json.loads(archive.read("metadata.json"))
                if not isinstance(metadata, dict):  # damaged: the loader then says what is wrong with the file
                    return None
                return str(metadata.get("keras_version") or "") or None
        import h5py

        with h5py.File(path, "r") as handle:
            value = handle.attrs.get("keras_version")
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile):  # h5py: RuntimeError when damaged
        return None
    return value.decode() if isinstance(value, bytes) else (str(value) if value is not None else None)


def is_keras2(path: Path) -> bool:
    """Written by Keras 1 or 2; an .h5 that names no version is older still (Keras 3 always names itself)."""
    version = keras_version(path)
    if version is None:
        return not zipfile.is_zipfile(path)
    return version.split(".")[0] in ("1", "2")


def read_file(path: Path) -> Keras2File:
    """The config and weight tensors of a Keras 2 `.h5` or `.keras` file, without Keras."""
    import h5py

    version = keras_version(path) or "2.x"
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
                weights = io.BytesIO(archive.read("model.weights.h5"))
            found = Keras2File(path, version, config)
            with h5py.File(weights, "r") as handle:
                read = _read_zip_weights(handle, config, found)
                _check_all_read(handle.get("layers"), read, found)
            return found
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
            if raw is None:
                raise DataError(f"{path} holds weights only (Keras {version} save_weights), no model",
                                "Save the whole model: model.save('model.h5') or model.save('model.keras').")
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            found = Keras2File(path, version, config)
            containers = {spec.get("config", {}).get("name") for spec in config.get("config", {}).get("layers", [])
                          if spec.get("class_name") in CONTAINERS}
            group = handle.get("model_weights", handle)
            _check_all_read(group, _read_h5_weights(group, found, containers), found)
            return found
    except (KeyError, ValueError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path} is not a complete Keras {version} model file: {short(exc)}",
                        "Re-save it with model.save().") from exc


def _decoded(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _check_all_read(group, read: set[str], found: Keras2File) -> None:
    """Every dataset of the file's weights group was read: none is left behind unplaced."""
    stored: list[str] = []
    if group is not None:
        group.visititems(lambda name, obj: stored.append(obj.name) if hasattr(obj, "shape") else None)
    unread = [name for name in stored if name not in read]
    if unread:
        raise DataError(f"{found.path}: {len(unread)} weight tensor(s) of the file belong to no layer of its "
                        f"config, e.g. {unread[0]}", RESAVE_HINT)


def _read_h5_weights(group, found: Keras2File, containers: set) -> set[str]:
    """`model_weights/<layer>/` groups: `weight_names` gives each tensor's 'leaf_layer/variable:0' name (a
    nested model's group holds its layers' tensors, named by leaf layer). The datasets read."""
    read = set()
    for top in _decoded(group.attrs.get("layer_names", [])):
        layer_group = group[top]
        for name in _decoded(layer_group.attrs.get("weight_names", [])):
            parts = name.split("/")
            leaf = parts[-2] if top in containers and len(parts) > 1 else top
            dataset = layer_group[name]
            read.add(dataset.name)
            found.tensors.setdefault((top, leaf), []).append((parts[-1].split(":")[0], np.asarray(dataset)))
    return read


def _snake(name: str) -> str:
    """tf_keras' generic_utils.to_snake_case: how its .keras weights file names each layer's folder."""
    name = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name if name[0] != "_" else "private" + name


def _read_zip_weights(handle, config: dict, found: Keras2File) -> set[str]:
    """tf_keras' .keras layout: `layers/<snake_case class>[_N]/vars/<i>`, folders numbered in layer order.
    The datasets read."""
    read: set[str] = set()
    def walk(model_config: dict, prefix: str, top: str | None) -> None:
        used: dict[str, int] = {}
        for layer in model_config["config"]["layers"]:
            kind = layer["class_name"]
            if model_config["class_name"] == "Sequential" and kind == "InputLayer":
                continue  # a tf_keras Sequential's `layers` leaves its input layer out
            name = _snake(kind)
            used[name] = used.get(name, -1) + 1
            folder = f"{prefix}layers/{name}" + (f"_{used[name]}" if used[name] else "")
            layer_name = layer["config"]["name"]
            if kind in CONTAINERS:
                walk(layer, folder + "/", top or layer_name)
                continue
            variables = handle.get(f"{folder}/vars")
            if variables is not None and len(variables):
                datasets = [variables[str(i)] for i in range(len(variables))]
                read.update(d.name for d in datasets)
                found.tensors[(top or layer_name, layer_name)] = [(None, np.asarray(d)) for d in datasets]

    walk(config, "", None)
    return read


def short(exc: BaseException) -> str:
    """An exception's text on one line, capped: never a config dump."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = re.sub(r"\{.*\}", "{...}", text)
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."
