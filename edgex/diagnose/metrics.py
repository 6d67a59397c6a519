"""Error statistics accumulated over samples in constant memory."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class ErrorStats:
    """Sum of squares of the reference and of the error, over every sample seen."""

    signal: float = 0.0
    noise: float = 0.0
    samples: int = 0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        reference = np.asarray(reference, np.float64)
        error = np.asarray(candidate, np.float64).reshape(reference.shape) - reference
        self.signal += float(np.sum(reference * reference))
        self.noise += float(np.sum(error * error))
        self.samples += 1

    @property
    def sqnr_db(self) -> float:
        """Signal-to-quantization-noise ratio; +inf when the tensors are identical."""
        if self.noise == 0.0:
            return math.inf
        if self.signal == 0.0:
            return -math.inf
        return 10.0 * math.log10(self.signal / self.noise)

    @property
    def rel_error(self) -> float:
        """||candidate - reference|| / ||reference||."""
        if self.signal == 0.0:
            return 0.0 if self.noise == 0.0 else math.inf
        return math.sqrt(self.noise / self.signal)


def output_error(run, samples, references) -> tuple[ErrorStats, float]:
    """Error of `run(sample)` against each reference output, and the share of samples whose top-1 agrees."""
    stats, agree = ErrorStats(), 0
    for sample, reference in zip(samples, references, strict=True):
        value = run(sample)
        stats.add(reference, value)
        agree += int(np.argmax(value) == np.argmax(reference))
    return stats, agree / max(len(samples), 1)


@dataclass
class RangeUse:
    """How much of its int8 grid a tensor's values really span: low means a stretched range."""

    total: float = 0.0
    samples: int = 0

    def add(self, values: np.ndarray, scale: float, levels: int = 255) -> None:
        if scale <= 0 or values.size == 0:
            return
        self.total += float(np.max(values) - np.min(values)) / (scale * levels)
        self.samples += 1

    @property
    def mean(self) -> float | None:
        return self.total / self.samples if self.samples else None


def rounded(value: float | None, digits: int = 2) -> float | None:
    """JSON-friendly rounding (inf stays a float, None stays None)."""
    if value is None or not math.isfinite(value):
        return value
    return round(value, digits)
