"""Keras Xception -> edgex's PyTorch Xception: map every weight, verify the outputs, write safetensors.

Works on a bare `keras.applications`-style Xception and on a wrapped one (backbone model +
pooling + dense layers, like the kitchenware model). Layers are matched by structure, not by
name (Keras auto-names the residual convs differently per session): the two 3x3 stem convs, the
four strided 1x1 residual convs and the separable convs in graph order, each BatchNorm found as
the consumer of its conv. The port then runs both models on the same inputs and refuses to write
anything when the logits differ by more than `tolerance` (exit 3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgex.errors import DataError, GateError, OutputError
from edgex.options import PORT
from edgex.preprocess import Preprocess, find_images

NOISE_IMAGES = 4
_ALLOWED = {"InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation", "ReLU",
            "MaxPooling2D", "Add", "GlobalAveragePooling2D", "Dense", "Dropout", "Functional", "Model"}


@dataclass
class KerasXceptionLayers:
    """The Keras layers of an Xception, grouped the way the PyTorch module is built."""

    stem: list
    residuals: list
    separables: list
    batchnorm_of: dict
    dense: list
    dropout: float
    pooled: bool


def _flatten(model) -> list:
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Model", "Sequential"):
            out.extend(_flatten(layer))
        out.append(layer)
    return out


def _consumer(layer):
    nodes = getattr(layer, "_outbound_nodes", [])
    if len(nodes) != 1:
        raise DataError(f"layer {layer.name} feeds {len(nodes)} layers; an Xception conv feeds one BatchNorm")
    return nodes[0].operation


def collect_layers(model) -> KerasXceptionLayers:
    """Find and check every Xception layer of a Keras model; DataError names what does not fit."""
    flat = _flatten(model)
    unknown = sorted({type(layer).__name__ for layer in flat} - _ALLOWED)
    if unknown:
        raise DataError(f"cannot port layers of type {', '.join(unknown)}",
                        "edgex ports Xception backbones with pooling and dense heads only.")
    for layer in flat:
        kind = type(layer).__name__
        if kind in ("Activation", "ReLU") and getattr(getattr(layer, "activation", None), "__name__", "relu") != "relu":
            raise DataError(f"layer {layer.name} is not a ReLU; Xception uses ReLU only")
        if kind in ("Conv2D", "SeparableConv2D"):
            if layer.activation.__name__ != "linear" or layer.use_bias:
                raise DataError(f"conv {layer.name} has a bias or an activation; not an Xception conv")
            if kind == "SeparableConv2D" and layer.depth_multiplier != 1:
                raise DataError(f"separable conv {layer.name} has depth multiplier {layer.depth_multiplier}")
    convs = [layer for layer in flat if type(layer).__name__ == "Conv2D"]
    stem = [c for c in convs if tuple(c.kernel_size) == (3, 3)]
    residuals = [c for c in convs if tuple(c.kernel_size) == (1, 1)]
    separables = [layer for layer in flat if type(layer).__name__ == "SeparableConv2D"]
    if len(stem) != 2 or len(residuals) != 4 or len(separables) < 10 or (len(separables) - 10) % 3:
        raise DataError(f"not an Xception: {len(stem)} stem convs, {len(residuals)} residual convs, "
                        f"{len(separables)} separable convs (expected 2, 4 and 10 + 3 per middle block)")
    batchnorm_of = {}
    for conv in stem + residuals + separables:
        bn = _consumer(conv)
        if type(bn).__name__ != "BatchNormalization":
            raise DataError(f"conv {conv.name} is followed by {type(bn).__name__}, not BatchNormalization")
        batchnorm_of[conv.name] = bn
    dense = [layer for layer in flat if type(layer).__name__ == "Dense"]
    dropouts = [layer for layer in flat if type(layer).__name__ == "Dropout"]
    pooled = any(type(layer).__name__ == "GlobalAveragePooling2D" for layer in flat)
    if not pooled:
        raise DataError("the model has no global average pooling", "Port a model whose output is pooled.")
    if len(dense) > 2:
        raise DataError(f"the head has {len(dense)} dense layers; edgex ports 0, 1 or 2")
    return KerasXceptionLayers(stem, residuals, separables, batchnorm_of, dense,
                               float(dropouts[0].rate) if dropouts else 0.0, pooled)


def config_for(found: KerasXceptionLayers, input_size: tuple[int, int]):
    """The XceptionConfig whose module has exactly the Keras model's shapes."""
    from edgex.models.torch_xception import BASE_CHANNELS, XceptionConfig

    def out_channels(layer) -> int:
        return int(layer.get_weights()[-1].shape[-1])

    channels = [out_channels(found.stem[0]), out_channels(found.stem[1])]
    channels += [out_channels(r) for r in found.residuals[:3]]
    channels += [out_channels(found.residuals[3]), out_channels(found.separables[-2]),
                 out_channels(found.separables[-1])]
    epsilons = {float(bn.epsilon) for bn in found.batchnorm_of.values()}
    if len(epsilons) != 1:
        raise DataError(f"BatchNorm layers use different epsilons {sorted(epsilons)}")
    head, hidden, hidden_act, classes = "features", 0, "relu", channels[-1]
    if len(found.dense) == 1:
        head, classes = "linear", int(found.dense[0].units)
    elif len(found.dense) == 2:
        head, hidden, classes = "dense", int(found.dense[0].units), int(found.dense[1].units)
        hidden_act = found.dense[0].activation.__name__
    output_act = found.dense[-1].activation.__name__ if found.dense else None
    return XceptionConfig(
        channels=tuple(channels),
        middle_blocks=(len(found.separables) - 10) // 3,
        num_classes=classes,
        head=head,
        hidden_units=hidden,
        hidden_activation=hidden_act,
        dropout=found.dropout,
        output_activation=None if output_act == "linear" else output_act,
        input_size=input_size,
        width=round(channels[-1] / BASE_CHANNELS[-1], 6),
        bn_epsilon=epsilons.pop(),
    )


def layer_slots(found: KerasXceptionLayers, config) -> list[tuple[str, str, object]]:
    """(module path, kind, Keras layer) for every weighted layer, in graph order: the one place the two
    architectures are lined up (the weight copy and the ONNX export's names both read it)."""
    slots = [("stem1", "conv", found.stem[0]), ("stem2", "conv", found.stem[1])]
    seps = iter(found.separables)
    for i in range(3):
        slots += [(f"entry.{i}.residual", "conv", found.residuals[i]),
                  (f"entry.{i}.sep1", "separable", next(seps)), (f"entry.{i}.sep2", "separable", next(seps))]
    for i in range(config.middle_blocks):
        slots += [(f"middle.{i}.seps.{j}", "separable", next(seps)) for j in range(3)]
    slots.append(("exit.residual", "conv", found.residuals[3]))
    slots += [(prefix, "separable", next(seps)) for prefix in ("exit.sep1", "exit.sep2", "exit_sep1", "exit_sep2")]
    if config.head == "linear":
        slots.append(("head", "dense", found.dense[0]))
    elif config.head == "dense":
        slots += [("head.0", "dense", found.dense[0]), ("head.2", "dense", found.dense[1])]
    return slots


def keras_scopes(found: KerasXceptionLayers, config) -> dict[str, str]:
    """module path -> the Keras scope converters give that layer's ops (`block2_sepconv1/separable_conv2d/depthwise`
    for a depthwise half), so a graph exported from the port names its ops as tf2onnx would."""
    scopes: dict[str, str] = {}
    for prefix, kind, layer in layer_slots(found, config):
        if kind == "separable":
            scopes[f"{prefix}.depthwise"] = f"{layer.name}/separable_conv2d/depthwise"
            scopes[prefix] = f"{layer.name}/separable_conv2d"
        else:
            scopes[prefix] = layer.name
    return scopes


def keras_to_state_dict(found: KerasXceptionLayers, module) -> dict:
    """Every Keras weight in PyTorch layout, under the module's state_dict names."""
    import torch

    state: dict[str, np.ndarray] = {}

    def conv(prefix: str, layer) -> None:
        state[f"{prefix}.conv.weight"] = layer.get_weights()[0].transpose(3, 2, 0, 1)
        batchnorm(f"{prefix}.bn", found.batchnorm_of[layer.name])

    def separable(prefix: str, layer) -> None:
        depthwise, pointwise = layer.get_weights()[:2]
        state[f"{prefix}.depthwise.weight"] = depthwise.transpose(2, 3, 0, 1)
        state[f"{prefix}.pointwise.weight"] = pointwise.transpose(3, 2, 0, 1)
        batchnorm(f"{prefix}.bn", found.batchnorm_of[layer.name])

    def batchnorm(prefix: str, bn) -> None:
        channels = int(bn.moving_mean.shape[0])
        state[f"{prefix}.weight"] = np.asarray(bn.gamma) if bn.gamma is not None else np.ones(channels, np.float32)
        state[f"{prefix}.bias"] = np.asarray(bn.beta) if bn.beta is not None else np.zeros(channels, np.float32)
        state[f"{prefix}.running_mean"] = np.asarray(bn.moving_mean)
        state[f"{prefix}.running_var"] = np.asarray(bn.moving_variance)

    def dense(prefix: str, layer) -> None:
        kernel, bias = layer.get_weights()
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = kernel.T, bias

    mappers = {"conv": conv, "separable": separable, "dense": dense}
    for prefix, kind, layer in layer_slots(found, module.config):
        mappers[kind](prefix, layer)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            tensors[key] = value.clone()
    return tensors


def verification_inputs(preprocess: Preprocess, images: Path | None, limit: int = 32, seed: int = 0) -> np.ndarray:
    """Real images when given (up to `limit`), plus a few seeded noise images: NHWC/NCHW as `preprocess`."""
    from PIL import Image

    batch = []
    if images is not None:
        files = find_images(images)[:limit]
        batch += [preprocess.load(p) for p in files]
    rng = np.random.default_rng(seed)
    for _ in range(NOISE_IMAGES):
        pixels = rng.integers(0, 256, (preprocess.height, preprocess.width, 3), dtype=np.uint8)
        batch.append(preprocess.apply(Image.fromarray(pixels)))
    return np.stack(batch)


def max_logit_difference(source, module, inputs: np.ndarray, batch: int = 8) -> tuple[float, np.ndarray, np.ndarray]:
    """Largest |Keras - PyTorch| over all inputs and outputs, and both outputs, `batch` inputs per call (1 inside
    a conversion: TensorFlow's allocator keeps what a larger batch took, about 0.7 GB for 4 at 299x299)."""
    from edgex.sources.pytorch import TorchModel

    torch_model = TorchModel(module)
    parts = [inputs[i : i + batch] for i in range(0, len(inputs), batch)]
    reference = np.concatenate([source.predict(part) for part in parts])
    candidate = np.concatenate([torch_model.predict(part, source.preprocess.layout) for part in parts])
    if reference.shape != candidate.shape:
        raise DataError(f"Keras gives outputs of shape {reference.shape}, the PyTorch port {candidate.shape}")
    return float(np.max(np.abs(reference - candidate))), reference, candidate


def ported_module(source):
    """(layers found, XceptionConfig, the PyTorch module with every Keras weight) of a Keras source; DataError when
    it is not an Xception the port maps."""
    from edgex.models.torch_xception import build_xception

    found = collect_layers(source.model)
    config = config_for(found, (source.preprocess.height, source.preprocess.width))
    module = build_xception(config)
    module.load_state_dict(keras_to_state_dict(found, module), strict=True)
    return found, config, module


def port_keras(model_path: Path | None, output: Path, *, verify_data: Path | None = None,
               tolerance: float = PORT.tolerance, trust_model: bool = False, reporter=None) -> dict:
    """Port, verify, then write OUTPUT (.safetensors) and its sidecar; returns a summary."""
    from safetensors.torch import save_file

    from edgex.sources.load import default_calibration_dir, load_source
    from edgex.sources.pytorch import sidecar_path

    output = Path(output)
    if output.suffix.lower() != ".safetensors":
        from edgex.errors import UsageError

        raise UsageError(f"output {output} must end in .safetensors")
    say = reporter.info if reporter is not None else (lambda _msg: None)
    source = load_source(model_path, trust_model=trust_model)
    try:
        if source.framework != "keras":
            raise DataError(f"{source.path} is not a Keras model", "edgex port reads .keras files.")
        preprocess = source.preprocess
        found, config, module = ported_module(source)
        if verify_data is None and model_path is None:
            verify_data = default_calibration_dir()
        inputs = verification_inputs(preprocess, verify_data)
        say(f"verifying the port on {len(inputs)} inputs")
        max_diff, reference, candidate = max_logit_difference(source, module, inputs)
        agree = int(np.sum(reference.argmax(1) == candidate.argmax(1)))
        verification = {"inputs": len(inputs), "images": len(inputs) - NOISE_IMAGES, "max_abs_logit_diff": max_diff,
                        "top1_agreement": agree, "tolerance": tolerance}
        if not max_diff <= tolerance:
            raise GateError(f"the PyTorch port differs from Keras by {max_diff:.3g} (> {tolerance}) in the logits; "
                            "nothing written", "The Keras model is not an Xception edgex can port exactly.")
        summary = {"output": str(output), "sidecar": str(sidecar_path(output)), "config": config.to_dict(),
                   "classes": source.classes, "verification": verification,
                   "ported_from": source.describe()}
        _write(output, module, config, source, verification, save_file)
    finally:
        source.close()
    return summary


def _write(output: Path, module, config, source, verification: dict, save_file) -> None:
    from edgex.sources.pytorch import sidecar_path, write_sidecar

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {output.parent}: {exc}") from exc
    tmp = output.with_name(output.name + ".tmp")
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    try:
        save_file(state, str(tmp), metadata={"format": "pt", "edgex.architecture": "xception"})
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors creates owner-only files; use the usual mode
        os.replace(tmp, output)
        write_sidecar(sidecar_path(output), architecture="xception", config=config.to_dict(),
                      classes=source.classes, preprocess=source.preprocess,
                      extra={"ported_from": source.describe(), "verification": verification})
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {output}: {exc}", "Check the folder is writable and has space.") from exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
