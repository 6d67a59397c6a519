"""The FP32 source as reference: found and checked as `edgex eval` finds it (the manifest's path, same
sha256), run through the same Keras adapter with the same batches, so the model-output agreement a
diagnosis prints is the agreement eval prints on the same images.

Per layer, the source's intermediate outputs are tapped where a graph tensor is the output of a
single-op Keras layer (an activation, an add, a pooling), named by the converter's scopes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgex.diagnose.names import layer_output

RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}


class SourceModel:
    """The source model of an artifact, or why there is none (`note`)."""

    def __init__(self, manifest: dict, override: Path | None = None, enabled: bool = True):
        from edgex.evaluation.reference import SourceReference

        self.path, self.note = SourceReference(override, enabled).locate(manifest)
        self._session = None
        self._taps = None

    @property
    def usable(self) -> bool:
        return self.path is not None

    def _keras(self):
        if self._session is None:
            from edgex.runtimes import open_runtime

            self._session = open_runtime("keras", self.path)
        return self._session

    def logits(self, samples: list[np.ndarray]) -> np.ndarray:
        """Source outputs for every sample, in eval's batches (edgex.evaluation.reference.SOURCE_BATCH)."""
        from edgex.evaluation.reference import SOURCE_BATCH

        inputs = np.concatenate(samples)
        session = self._keras()
        return np.concatenate([session.run(inputs[i : i + SOURCE_BATCH]) for i in range(0, len(inputs), SOURCE_BATCH)])

    def taps(self, names: list[str], layout: str):
        """A callable (sample, {name: artifact value}) -> {name: source value in the artifact's layout} for
        the `names` that are a Keras layer's output; None when the source cannot be tapped (not Keras)."""
        source = self._keras().source
        if source.framework != "keras":
            return None
        from edgex.diagnose.names import keras_layers

        layers = keras_layers(self.path)
        wanted = {name: layer for name in names if (layer := layer_output(name, layers))}
        if not wanted:
            return None
        import keras

        try:
            model = keras.Model(source.model.inputs, [source.model.get_layer(layer).output
                                                      for layer in dict.fromkeys(wanted.values())])
        except (ValueError, AttributeError, KeyError):  # nested models: their layers are not reachable
            return None
        order = list(dict.fromkeys(wanted.values()))

        def tap(sample: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            outputs = model([sample.astype(np.float32)], training=False)  # the inputs' structure: a list
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            by_layer = dict(zip(order, (np.asarray(o) for o in outputs), strict=True))
            out = {}
            for name, layer in wanted.items():
                aligned = align(by_layer[layer], np.shape(values[name]), layout) if name in values else None
                if aligned is not None:
                    out[name] = aligned
            return out

        self._taps = wanted
        return tap

    @property
    def traced(self) -> dict[str, str]:
        """{artifact tensor: Keras layer} of the last `taps` call."""
        return dict(self._taps or {})

    def close(self) -> None:
        if self._session is not None:
            self._session.source.close()
            self._session = None


def align(value: np.ndarray, shape: tuple, layout: str) -> np.ndarray | None:
    """A Keras (NHWC) value arranged as an artifact tensor of `shape` in `layout`; None when it cannot be."""
    value = np.asarray(value)
    if layout == "NCHW" and value.ndim == 4:
        value = value.transpose(0, 3, 1, 2)
    if value.shape == tuple(shape):
        return value
    squeezed = [d for d in value.shape if d != 1]
    if value.size == int(np.prod(shape)) and squeezed == [d for d in shape if d != 1]:
        return value.reshape(shape)
    return None


def users_logits(target: str, model_path: Path, samples: list[np.ndarray],
                 precision: str | None) -> tuple[np.ndarray, dict]:
    """The artifact's outputs as `edgex eval` runs it (the same runtime adapter, one image per run) and what
    ran (runtime, precision, delegate or providers)."""
    from edgex.runtimes import open_runtime

    session = open_runtime(RUNTIMES[target], model_path, precision)
    outputs = np.concatenate([session.run(sample) for sample in samples])
    return outputs, dict(session.info)
