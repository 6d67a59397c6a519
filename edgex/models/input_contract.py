"""What a Keras model expects at its input and gives at its output, read from its own layers.

Preprocessing layers at the input (Rescaling, Normalization, Resizing, CenterCrop) mean the model
takes raw 0..255 pixels and scales them itself; without them edgex applies Xception's own
`preprocess_input` (x / 127.5 - 1). A softmax or sigmoid at the output means probabilities, which the
parity check compares as distributions rather than as logits.
"""

from __future__ import annotations

from edgex.models.inference_graph import is_identity_at_inference

PREPROCESSING_LAYERS = ("Rescaling", "Normalization", "Resizing", "CenterCrop")


def input_layers(model) -> list:
    """The preprocessing layers at the model's input, in order (nested Sequentials opened, identities skipped)."""
    found = []
    for layer in _leading(model):
        kind = type(layer).__name__
        if kind in PREPROCESSING_LAYERS:
            found.append(layer)
        elif not is_identity_at_inference(layer):
            break
    return found


def _leading(model):
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if kind == "Sequential" and not is_identity_at_inference(layer):
            inner = [child for child in layer.layers if type(child).__name__ != "InputLayer"]
            if inner and type(inner[0]).__name__ in PREPROCESSING_LAYERS:
                yield from inner
                return
        yield layer


def describe_layer(layer) -> str:
    """A short, exact description of one preprocessing layer, e.g. Rescaling(scale=0.007843, offset=-1)."""
    import numpy as np

    kind = type(layer).__name__
    if kind == "Rescaling":
        return f"Rescaling(scale={_num(layer.scale)}, offset={_num(layer.offset)})"
    if kind == "Normalization":
        mean = np.ravel(np.asarray(layer.mean)).round(3).tolist()
        var = np.ravel(np.asarray(layer.variance)).round(3).tolist()
        return f"Normalization(mean={mean}, variance={var})"
    if kind in ("Resizing", "CenterCrop"):
        return f"{kind}({layer.height}x{layer.width})"
    return kind


def _num(value) -> str:
    import numpy as np

    array = np.ravel(np.asarray(value, np.float64))
    return f"{array[0]:.6g}" if array.size == 1 else str(array.round(6).tolist())


def spatial_size(layers: list) -> tuple[int, int] | None:
    """The size the model resizes or crops to itself, when its input size is free."""
    for layer in reversed(layers):
        if type(layer).__name__ in ("Resizing", "CenterCrop"):
            return int(layer.height), int(layer.width)
    return None


def scales_itself(layers: list) -> bool:
    return any(type(layer).__name__ in ("Rescaling", "Normalization") for layer in layers)


def output_kind(model) -> str:
    """'logits', 'softmax' or 'sigmoid': the activation of the model's last layer."""
    layer = model.layers[-1]
    while hasattr(layer, "layers") and layer.layers:  # a nested model as the last layer
        layer = layer.layers[-1]
    kind = type(layer).__name__
    if kind == "Softmax":
        return "softmax"
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    if kind in ("Dense", "Activation", "Conv2D") and activation in ("softmax", "sigmoid"):
        return activation
    return "logits"
