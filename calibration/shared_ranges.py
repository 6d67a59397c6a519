"""One activation-range pass per conversion, shared by every target whose graph computes the same tensors.

The ONNX and TFLite graphs of one source name their tensors differently and lay them out differently
(NCHW, NHWC, folded BatchNorm, transposes), yet each pass runs the same network over the same 300
images: on 2 AVX2 cores, about 70 s per target. A tensor that holds the same values as another on the
same images is the same function of the input, so it has the same range on every image. The first
target's pass publishes a book: each tensor's range and its fingerprint (size, min, max, mean, std of its
finite values) on the first few calibration images. A later target fingerprints its own tensors on those
images and takes the ranges of the book's matching tensors; when any of its tensors has no match, or
matches tensors of different ranges, it runs its own pass. The parity gate checks the result as always.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FINGERPRINT_IMAGES = 3
_STATS = 5  # size, min, max, mean, std
# Two runtimes' float results for one tensor differ by ~1e-5 of its magnitude (other kernels, other folding);
# different tensors of a trained network differ by far more in at least one of 15 statistics.
MATCH_TOLERANCE = 1e-3


def fingerprint(values: np.ndarray) -> np.ndarray:
    """Size, min, max, mean and std of the finite values (a max-pool's -inf padding border is no value)."""
    values = np.asarray(values)
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if not values.size:
        return np.zeros(_STATS)
    values = values.astype(np.float64, copy=False)
    return np.array([values.size, values.min(), values.max(), values.mean(), values.std()])


def shared_note(made_by: str) -> str:
    """The recipe note of an artifact whose ranges came from another target's pass."""
    return (f"activation ranges of the {made_by} target's pass over the same images, each tensor matched by its "
            f"values on {FINGERPRINT_IMAGES} images")


def book_path(work_dir: Path, calib, method: str) -> Path:
    """Where a conversion keeps the book of ranges for one estimator, image set and preprocessing."""
    key = f"{method}\n{calib.files_sha256()}\n{calib.preprocess.to_json()}"
    return work_dir / f"range-book-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


@dataclass
class RangeBook:
    """Tensor name -> range, and the same name -> its fingerprints on the first FINGERPRINT_IMAGES images."""

    ranges: dict[str, tuple[float, float]]
    prints: dict[str, np.ndarray]
    made_by: str

    def save(self, path: Path) -> None:
        data = {"made_by": self.made_by, "tensors": {
            name: {"range": list(self.ranges[name]), "prints": self.prints[name].tolist()}
            for name in self.ranges if name in self.prints}}
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(data))
        partial.rename(path)  # a half-written book is never read as a whole one

    @classmethod
    def load(cls, path: Path) -> RangeBook | None:
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        tensors = data["tensors"]
        return cls({n: tuple(t["range"]) for n, t in tensors.items()},
                   {n: np.asarray(t["prints"], np.float64) for n, t in tensors.items()}, data["made_by"])

    def lookup(self, prints: dict[str, np.ndarray]) -> dict[str, tuple[float, float]] | None:
        """The range of every tensor in `prints`, from the book's tensors with the same fingerprint; None as soon
        as one has no match or matches tensors whose ranges differ."""
        names = list(self.prints)
        if not names:
            return None
        table = np.stack([self.prints[n] for n in names]).reshape(len(names), -1, _STATS)
        bounds = np.array([self.ranges[n] for n in names])
        scale = np.maximum(np.abs(table[:, :, 1:3]).max(axis=(1, 2)), 1e-12)
        found = {}
        for name, query in prints.items():
            query = np.asarray(query, np.float64).reshape(-1, _STATS)
            if query.shape != table.shape[1:]:
                return None
            same_size = (table[:, :, 0] == query[:, 0]).all(axis=1)
            close = (np.abs(table[:, :, 1:] - query[:, 1:]) <= MATCH_TOLERANCE * scale[:, None, None]).all(axis=(1, 2))
            matches = np.flatnonzero(same_size & close)
            if not matches.size:
                return None
            chosen = bounds[matches]
            spread = np.abs(chosen - chosen[0]).max()
            if spread > MATCH_TOLERANCE * max(np.abs(chosen[0]).max(), 1e-12):
                return None
            found[name] = (float(chosen[0][0]), float(chosen[0][1]))
        return found
