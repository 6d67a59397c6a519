"""Inputs that do not fit the model: caught with the expected and actual shapes, before converting.

A wrong --input-size, a 1-channel model, or --layout NCHW for an NHWC model would otherwise fail
deep inside a converter with a framework traceback, or worse, convert and give garbage.
"""

from __future__ import annotations

import numpy as np

from edgex.errors import DataError, UsageError


def model_input_shape(source) -> tuple | None:
    """The source model's input shape (None for free dimensions), or None when it cannot be read."""
    try:
        if source.framework == "keras":
            return tuple(source.model.inputs[0].shape)
        if source.framework == "onnx":  # as the artifacts take it: converters transpose to --layout
            dims = source.model.input_dims
            if source.preprocess.layout == source.model.layout:
                return dims
            return tuple(dims[i] for i in ((0, 2, 3, 1) if source.model.layout == "NCHW" else (0, 3, 1, 2)))
        if source.framework == "saved_model":
            fn = source.model.signatures["serving_default"]
            return tuple(next(iter(fn.structured_input_signature[1].values())).shape)
    except (AttributeError, IndexError, KeyError, StopIteration, TypeError):
        return None
    return None


def check_input_fits(model_shape: tuple | None, preprocess, model_path) -> None:
    """The preprocessed tensor (1, H, W, 3) or (1, 3, H, W) must match every fixed model dimension."""
    if model_shape is None or len(model_shape) != 4:
        return
    ours = preprocess.input_shape
    mismatch = [i for i in range(1, 4) if model_shape[i] is not None and model_shape[i] != ours[i]]
    if not mismatch:
        return
    expected = "x".join("?" if d is None else str(d) for d in model_shape[1:])
    channels_last = model_shape[-1] in (1, 3, 4)
    layout_hint = ""
    if preprocess.layout == "NCHW" and channels_last:
        layout_hint = " The model is NHWC: drop --layout NCHW."
    elif preprocess.layout == "NHWC" and model_shape[1] in (1, 3, 4) and not channels_last:
        layout_hint = " The model is NCHW: pass --layout NCHW."
    channels = model_shape[-1] if channels_last else model_shape[1]
    if channels is not None and channels != 3:
        raise DataError(f"model {model_path} takes {channels}-channel input {tuple(model_shape)}; edgex feeds "
                        "3-channel RGB images", "Convert an RGB (3-channel) model.")
    raise UsageError(f"preprocessing gives tensors of shape {ours} ({preprocess.layout}) but model {model_path} "
                     f"expects {tuple(model_shape)} (batch x {expected})",
                     ("Fix --input-size/--layout to match the model." + layout_hint).strip())


def require_finite(values: np.ndarray, what: str, hint: str) -> None:
    """NaN or Inf anywhere in `values` is bad data (65), named by `what`."""
    from edgex.predict.standalone import nonfinite_reason

    values = np.asarray(values)
    if nonfinite_reason(values) is not None:
        bad = int(values.size - np.isfinite(values).sum())
        raise DataError(f"{what} holds {bad} NaN/Inf value(s)", hint)
