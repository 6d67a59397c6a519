"""Keras 2 files (tf_keras `.h5` and `.keras`) rebuilt in Keras 3 from their config, weights placed by layer.

Keras 3 cannot read what Keras 2 wrote: its layers reject Keras 2 config keys (SeparableConv2D's `groups`
and `kernel_*` initializers) and it has no class `Functional` of tf_keras. The file itself is plain data
(a JSON config and HDF5 weights), so edgex maps each layer config to its Keras 3 layer, wires the graph
from the config, and places every weight tensor of the file into the rebuilt layers, counting them: a
tensor left over, missing or of another shape stops the load. Nothing of the file is executed (Lambda and
TFOpLambda layers are refused), and where tf_keras is installed the rebuilt model is also compared with
tf_keras' own on a fixed input (`verify_with_tf_keras`).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgex.errors import DataError, RefusedError

# How to get a file edgex can read when a layer has no Keras 3 counterpart here: with the TensorFlow 2.x
# that trained the model, a SavedModel (which edgex converts with --trust-model).
RESAVE_HINT = ("With the TensorFlow 2.x that wrote it, export a SavedModel (model.export('DIR')) and "
               "convert DIR with --trust-model.")
_CONTAINERS = ("Functional", "Model", "Sequential")
_CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
# Keys that only matter for training: dropped from every layer config.
_TRAINING_ONLY = re.compile(r".*_(initializer|regularizer|constraint)$")
_DROPPED = {"dtype", "trainable", "activity_regularizer", "batch_input_shape", "input_shape", "batch_size",
            "input_dim", "input_length", "dynamic"}
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


class UnmappableLayer(DataError):
    """A layer of the file has no Keras 3 counterpart edgex can build (exit 65)."""


def keras_version(path: Path) -> str | None:
    """The version of Keras that wrote `path` (.h5 attribute or .keras metadata.json); None when unstated."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if "metadata.json" not in archive.namelist():
                    return None
                return str(json.loads(archive.read("metadata.json")).get("keras_version") or "") or None
        import h5py

        with h5py.File(path, "r") as handle:
            value = handle.attrs.get("keras_version")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    return value.decode() if isinstance(value, bytes) else (str(value) if value is not None else None)


def is_keras2(path: Path) -> bool:
    version = keras_version(path)
    return version is not None and version.split(".")[0] in ("1", "2")


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
                          if spec.get("class_name") in _CONTAINERS}
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
            if kind in _CONTAINERS:
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


# -- rebuild ---------------------------------------------------------------------------------------------


def rebuild(found: Keras2File):
    """The Keras 3 model of the file's config, with every weight tensor of the file placed."""
    model = _build(found.config, found)
    placed = place_weights(model, found)
    return model, placed


def _build(model_config: dict, found: Keras2File):
    kind = model_config.get("class_name")
    if kind == "Sequential":
        return _build_sequential(model_config, found)
    if kind in ("Functional", "Model"):
        return _build_functional(model_config, found)
    raise UnmappableLayer(f"{found.path} (Keras {found.keras_version}) is a {kind}, not a Functional or "
                          "Sequential model", RESAVE_HINT)


def _build_sequential(model_config: dict, found: Keras2File):
    import keras

    model = keras.Sequential(name=model_config["config"].get("name"))
    shaped = False
    for layer in model_config["config"]["layers"]:
        config = layer.get("config", {})
        if not shaped and layer["class_name"] != "InputLayer" and config.get("batch_input_shape"):
            model.add(keras.Input(batch_shape=tuple(config["batch_input_shape"])))
        shaped = True
        model.add(_layer(layer, found))
    return model


def _build_functional(model_config: dict, found: Keras2File):
    import keras

    config = model_config["config"]
    layers = {spec["config"]["name"] if "config" in spec else spec["name"]: spec for spec in config["layers"]}
    built: dict[str, object] = {}
    outputs: dict[tuple[str, int], list] = {}  # (layer, node index) -> its output tensors

    def tensors_of(name: str, node: int) -> list:
        node -= _creation_nodes(layers.get(name, {}))
        if (name, node) not in outputs:
            _call(name, node)
        return outputs[(name, node)]

    def _call(name: str, node: int) -> None:
        spec = layers.get(name)
        if spec is None:
            raise DataError(f"{found.path}: the model config refers to layer {name!r}, which it does not define")
        layer = built.setdefault(name, _layer(spec, found))
        if spec["class_name"] == "InputLayer":
            outputs[(name, node)] = [layer.output]
            return
        inbound = spec.get("inbound_nodes", [])[node]
        if isinstance(inbound, dict):
            raise UnmappableLayer(f"{found.path}: layer {name!r} ({spec['class_name']}) is wired in a format edgex "
                                  "does not read", RESAVE_HINT)
        args = []
        for entry in inbound:
            source, source_node, index = entry[0], entry[1], entry[2]
            kwargs = entry[3] if len(entry) > 3 else {}
            if any(k != "training" for k in kwargs):
                raise UnmappableLayer(f"{found.path}: layer {name!r} ({spec['class_name']}) is called with "
                                      f"arguments {sorted(kwargs)} edgex cannot map", RESAVE_HINT)
            args.append(tensors_of(source, source_node)[index])
        result = layer(args[0] if len(args) == 1 else args)
        outputs[(name, node)] = list(result) if isinstance(result, (list, tuple)) else [result]

    def endpoints(key: str) -> list:
        refs = config[key]
        refs = [refs] if refs and isinstance(refs[0], str) else refs
        return [tensors_of(ref[0], ref[1])[ref[2]] for ref in refs]

    inputs, results = endpoints("input_layers"), endpoints("output_layers")
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, results[0] if len(results) == 1 else results,
                       name=config.get("name"))


def _creation_nodes(spec: dict) -> int:
    """1 for a nested model built on its own Input: tf_keras counts that creation node in references but
    leaves it out of `inbound_nodes` (its functional._should_skip_first_node)."""
    if spec.get("class_name") in ("Functional", "Model"):
        return 1
    if spec.get("class_name") == "Sequential":
        first = (spec.get("config", {}).get("layers") or [{}])[0]
        return int(first.get("class_name") == "InputLayer" or "batch_input_shape" in first.get("config", {}))
    return 0


def _layer(spec: dict, found: Keras2File):
    """One Keras 3 layer (or nested model) for one Keras 2 layer config."""
    import keras

    kind = spec["class_name"]
    config = dict(spec.get("config", {}))
    name = config.get("name", "?")
    if kind in _CODE_LAYERS:
        raise RefusedError(f"{found.path} (Keras {found.keras_version}) contains layer {name!r} ({kind}): "
                           "code edgex does not run", RESAVE_HINT)
    if kind in _CONTAINERS:
        return _build(spec, found)
    layer_class = getattr(keras.layers, kind, None)
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise UnmappableLayer(f"{found.path} (Keras {found.keras_version}): layer {name!r} ({kind}) has no "
                              "Keras 3 counterpart in edgex", RESAVE_HINT)
    try:
        return layer_class.from_config(keras3_config(kind, config))
    except (TypeError, ValueError, KeyError) as exc:
        raise UnmappableLayer(f"{found.path} (Keras {found.keras_version}): layer {name!r} ({kind}) cannot be "
                              f"rebuilt in Keras 3: {short(exc)}", RESAVE_HINT) from exc


def keras3_config(kind: str, config: dict) -> dict:
    """A Keras 2 layer config as Keras 3 takes it; what changes inference is kept or refused, never dropped."""
    out = {k: v for k, v in config.items() if k not in _DROPPED and not _TRAINING_ONLY.match(k)}
    if kind == "InputLayer":
        shape = config.get("batch_input_shape") or config.get("batch_shape")
        if config.get("ragged"):
            raise ValueError("ragged inputs are not supported")
        return {"batch_shape": tuple(shape), "name": config.get("name"), "sparse": bool(config.get("sparse"))}
    separable = kind in ("SeparableConv2D", "DepthwiseConv2D", "SeparableConv1D", "DepthwiseConv1D")
    if separable and out.pop("groups", 1) != 1:
        raise ValueError("groups other than 1")
    if kind == "BatchNormalization":
        axis = out.get("axis", -1)
        if isinstance(axis, list):
            if len(axis) != 1:
                raise ValueError(f"axis {axis}")
            out["axis"] = axis[0]
        for key, neutral in (("renorm", False), ("virtual_batch_size", None), ("adjustment", None)):
            if out.pop(key, neutral) != neutral:
                raise ValueError(f"{key}={config[key]!r}")
        for key in ("fused", "renorm_clipping", "renorm_momentum"):
            out.pop(key, None)
    if kind == "LeakyReLU" and "alpha" in out:
        out["negative_slope"] = out.pop("alpha")
    if isinstance(out.get("activation"), dict):
        raise ValueError(f"activation {out['activation'].get('class_name')}")
    return out


# -- weights ---------------------------------------------------------------------------------------------


def _leaves(model, top: str | None = None):
    """(key, layer) for every layer with weights, keyed as `Keras2File.tensors` is."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _leaves(layer, top or layer.name)
        elif layer.weights:
            yield (top or layer.name, layer.name), layer


def place_weights(model, found: Keras2File) -> int:
    """Assign each weight tensor of the file to its variable; every one placed, shapes equal, or DataError."""
    remaining = dict(found.tensors)
    placed = 0
    for key, layer in _leaves(model):
        tensors = remaining.pop(key, None)
        variables = layer.weights
        if tensors is None or len(tensors) != len(variables):
            have = 0 if tensors is None else len(tensors)
            raise DataError(f"{found.path}: layer {key[1]!r} ({type(layer).__name__}) needs {len(variables)} weight "
                            f"tensor(s), the file has {have} for it", "Re-save the model with model.save().")
        for variable, (stored_name, value) in zip(variables, tensors, strict=True):
            ours = variable.name.split("/")[-1].split(":")[0]
            if stored_name is not None and stored_name != ours and {stored_name, ours} != {"depthwise_kernel",
                                                                                           "kernel"}:
                raise DataError(f"{found.path}: layer {key[1]!r} stores {stored_name!r} where Keras 3 has {ours!r}")
            if tuple(variable.shape) != value.shape:
                raise DataError(f"{found.path}: weight {key[1]}/{ours} has shape {value.shape} in the file, "
                                f"{tuple(variable.shape)} in the rebuilt model")
            variable.assign(value)
            placed += 1
    if remaining:
        left = ", ".join(f"{k[1]} ({len(v)})" for k, v in list(remaining.items())[:3])
        raise DataError(f"{found.path}: {sum(len(v) for v in remaining.values())} weight tensor(s) of the file "
                        f"belong to no rebuilt layer: {left}", RESAVE_HINT)
    return placed


def verify_with_tf_keras(path: Path, model, size: tuple[int, ...]) -> float | None:
    """Max |output difference| between the rebuilt model and tf_keras' own load, on a fixed input; None
    without tf_keras (then only the exact placement of every tensor vouches for the rebuild)."""
    import importlib.util

    if importlib.util.find_spec("tf_keras") is None:
        return None
    import tf_keras

    original = tf_keras.models.load_model(str(path), compile=False)
    batch = np.random.default_rng(0).uniform(-1, 1, (1, *size)).astype(np.float32)
    expected = np.asarray(original(batch, training=False))
    return float(np.max(np.abs(np.asarray(model(batch, training=False)) - expected)))


def load(path: Path, notes: list[str]):
    """Read, rebuild and check a Keras 2 file; one line in `notes` says what vouches for the rebuild."""
    found = read_file(path)
    model, placed = rebuild(found)
    line = (f"Keras {found.keras_version} file rebuilt in Keras 3: {placed} of {found.tensor_count} weight tensors "
            "placed layer by layer, shapes equal")
    try:
        difference = verify_with_tf_keras(path, model, tuple(model.inputs[0].shape[1:]))
    except Exception as exc:  # tf_keras' own load failing is no reason to refuse the rebuilt model
        difference, line = None, line + f"; tf_keras could not load it to compare ({short(exc)})"
    if difference is not None:
        line += f"; max output difference vs tf_keras on a fixed input: {difference:.2e}"
    elif "tf_keras could not" not in line:
        line += "; outputs not compared (tf_keras is not installed: the exact placement vouches for it)"
    notes.append(line)
    return model
