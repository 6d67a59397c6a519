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

import re
from pathlib import Path

import numpy as np

from edgex.errors import DataError, RefusedError
from edgex.sources.keras2_file import CONTAINERS, RESAVE_HINT, Keras2File, read_file, short

_CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
# Keys that only matter for training: dropped from every layer config.
_TRAINING_ONLY = re.compile(r".*_(initializer|regularizer|constraint)$")
_DROPPED = {"dtype", "trainable", "activity_regularizer", "batch_input_shape", "input_shape", "batch_size",
            "input_dim", "input_length", "dynamic"}


class UnmappableLayer(DataError):
    """A layer of the file has no Keras 3 counterpart edgex can build (exit 65)."""


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
        if name not in built:
            built[name] = _layer(spec, found)
        layer = built[name]
        if spec["class_name"] == "InputLayer":
            outputs[(name, node)] = [layer.output]
            return
        nodes = spec.get("inbound_nodes") or []
        if not 0 <= node < len(nodes):
            raise DataError(f"{found.path}: the model config calls layer {name!r} more often than it lists")
        inbound = nodes[node]
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

    for name, spec in layers.items():  # in the config's (topological) order: no deep recursion
        for node in range(len(spec.get("inbound_nodes") or []) or int(spec["class_name"] == "InputLayer")):
            if (name, node) not in outputs:
                _call(name, node)
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
    if kind in CONTAINERS:
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
        line += "; outputs not compared with tf_keras' own (tf_keras is not installed)"
    notes.append(line)
    return model
