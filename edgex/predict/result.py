"""What `Predictor.predict` returns: typed, so callers need not remember which axis holds what."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgex.predict.standalone import class_names, probabilities, top_k


@dataclass(frozen=True)
class Prediction:
    """One image: its top-1 label and probability, the top-k, and the full output rows."""

    input: str
    label: str
    probability: float
    top_k: list[tuple[str, float]]
    logits: np.ndarray
    probabilities: np.ndarray


@dataclass(frozen=True)
class Predictions:
    """N images. `logits` are the raw model outputs (N, C) in float32, int8 outputs already dequantized
    (for models whose output_kind is softmax or sigmoid they are those probabilities); `probabilities`
    (N, C) are softmax(logits) for logits models, the outputs themselves otherwise. `top_k[i]` lists
    (label, probability) best first. Indexing or iterating gives one `Prediction` per image."""

    inputs: list[str]
    classes: list[str]
    output_kind: str
    logits: np.ndarray
    probabilities: np.ndarray
    top_k: list[list[tuple[str, float]]]

    @classmethod
    def from_outputs(cls, inputs: list[str], outputs: np.ndarray, classes: list[str] | None, output_kind: str,
                     k: int) -> Predictions:
        """Scores through the same functions as the bundle's predict.py (edgex.predict.standalone)."""
        outputs = np.asarray(outputs, dtype=np.float32).reshape(len(inputs), -1)
        names = class_names(classes, outputs.shape[1])
        probs = probabilities(outputs, output_kind)
        return cls(list(inputs), names, output_kind, outputs, probs, [top_k(p, names, k) for p in probs])

    @property
    def labels(self) -> list[str]:
        """The top-1 label of every image."""
        return [row[0][0] for row in self.top_k]

    @property
    def indices(self) -> np.ndarray:
        """The top-1 class index of every image (argmax of the outputs)."""
        return np.argmax(self.probabilities, axis=1)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> Prediction:
        label, probability = self.top_k[i][0]
        return Prediction(self.inputs[i], label, probability, self.top_k[i], self.logits[i], self.probabilities[i])

    def __iter__(self) -> Iterator[Prediction]:
        return (self[i] for i in range(len(self)))
