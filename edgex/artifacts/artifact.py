"""`edgex.Artifact`: what `edgex.convert` returns for each artifact it built, ready to predict with.

Like litert-torch's converted model, an Artifact is callable: `artifact(batch)` gives the raw outputs of a
preprocessed batch, `artifact.predict(images)` classifies images with the manifest's preprocessing and
class names, through `edgex.load` (the same path as `edgex predict`, so the two cannot disagree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgex.errors import UsageError

_OWN_KEYS = ("path", "target", "precision", "parity", "size_bytes", "status", "error", "recipe", "budget",
             "timings")


@dataclass(eq=False)
class Artifact:
    """One artifact: its folder (None when it failed the parity gate: nothing was written), target, precision,
    parity metrics against the source (n, agreement, cosine, p05_cosine, max_abs, mean_abs) and size on disk."""

    path: Path | None
    target: str
    precision: str
    parity: dict = field(default_factory=dict)
    size_bytes: int | None = None
    status: str = "ok"  # or "failed" (parity gate missed)
    error: str | None = None
    recipe: str | None = None  # int8: the quantization recipe that passed
    budget: dict | None = None  # int8 with an accuracy budget: met, shortfall, layers kept in float
    timings: list[dict] = field(default_factory=list, repr=False)  # per step, as `edgex convert --timings`
    details: dict = field(default_factory=dict, repr=False)  # the rest of the build's record (tries, skipped)
    _predictor: object | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_result(cls, result: dict) -> Artifact:
        """From the pipeline's record of one build (edgex.conversion.build)."""
        path = result.get("path")
        return cls(path=Path(path) if path else None, **{k: result[k] for k in _OWN_KEYS[1:] if k in result},
                   details={k: v for k, v in result.items() if k not in _OWN_KEYS})

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def name(self) -> str:
        return f"{self.target}-{self.precision}"

    def to_dict(self) -> dict:
        """The JSON record `edgex convert --json` prints for it."""
        own = {k: getattr(self, k) for k in _OWN_KEYS}
        own["path"] = str(self.path) if self.path else None
        return {**own, **self.details}

    def predict(self, items, top_k: int | None = None):
        """Classify image paths, PIL images or arrays (one or a list, or an (N, H, W, 3) uint8 batch):
        `edgex.predict.result.Predictions` (.labels, .probabilities, .top_k)."""
        return self._open().predict(items, top_k)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Raw float32 outputs (logits or probabilities, see the manifest) of a preprocessed batch."""
        return self._open().run(np.asarray(batch, dtype=np.float32))

    def _open(self):
        if self.path is None:
            raise UsageError(f"{self.name} failed the parity gate and was not written ({self.error})",
                             "Look at artifact.parity, or convert again with other calibration images.")
        if self._predictor is None:
            from edgex.predict.model import load

            self._predictor = load(self.path)
        return self._predictor

    def close(self) -> None:
        """Free the runtime `predict` opened (it reopens on the next call)."""
        if self._predictor is not None:
            self._predictor.close()
            self._predictor = None

    def __enter__(self) -> Artifact:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
