"""The inference-time Keras model: layers that are identity at inference are bypassed before export.

Keras' transfer-learning guide leaves RandomFlip/RandomRotation and Dropout inside the model. They do
nothing at inference, but the exported SavedModel keeps their random ops (StatelessRandomUniformV2,
ImageProjectiveTransformV3), which no converter takes. edgex clones the model with each such layer
replaced by a pass-through; every other layer is reused as is, weights included. The parity check
still compares the artifacts with the original model.
"""

from __future__ import annotations

# Keras layers that return their input unchanged when training=False.
IDENTITY_AT_INFERENCE = frozenset({
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
    "RandomHeight", "RandomWidth", "RandomGrayscale", "RandomHue", "RandomSaturation", "RandomSharpness",
    "RandomShear", "RandomColorJitter", "RandomColorDegeneration", "RandomPosterization", "RandomInvert",
    "RandomErasing", "RandomGaussianBlur", "RandomPerspective", "RandomElasticTransform", "RandAugment",
    "AugMix", "CutMix", "MixUp", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
})


def is_identity_at_inference(layer) -> bool:
    """A listed layer, or a nested model made only of them (the guide's `data_augmentation` Sequential)."""
    inner = getattr(layer, "layers", None)
    if inner is not None and type(layer).__name__ in ("Sequential", "Functional", "Model"):
        inner = [child for child in inner if type(child).__name__ != "InputLayer"]
        return bool(inner) and all(is_identity_at_inference(child) for child in inner)
    return type(layer).__name__ in IDENTITY_AT_INFERENCE


def removed_layers(model) -> list[dict]:
    """Name and type of every top-level layer the inference graph bypasses."""
    return [{"name": layer.name, "type": type(layer).__name__} for layer in model.layers
            if is_identity_at_inference(layer)]


def inference_model(model):
    """(model for export, removed layers): `model` itself when nothing is identity at inference."""
    removed = removed_layers(model)
    if not removed:
        return model, []
    import keras

    class Passthrough(keras.layers.Layer):
        """Stands in for a layer that is identity at inference (accepts the mask and training flags)."""

        def call(self, inputs, mask=None, training=None):
            return inputs

        def compute_output_shape(self, input_shape):
            return input_shape

    def replace(layer):
        return Passthrough(name=layer.name) if is_identity_at_inference(layer) else layer

    return keras.models.clone_model(model, clone_function=replace), removed
