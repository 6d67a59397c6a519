"""Error statistics accumulated over samples in constant memory, and how much of its grid a tensor uses.

Every figure here is defined so that it cannot lie: a comparison whose reference carries no signal
(missing, or all zeros) is "not comparable" (None), never a number; range use is measured on the
integer codes of the quantized tensor itself, so it is a share of the grid by construction.
"""

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

    def add(self, reference: np.ndarray | None, candidate: np.ndarray) -> None:
        """One sample; a missing reference (None) counts as no signal, so the result stays not comparable."""
        if reference is None:
            self.samples += 1
            return
        reference = np.asarray(reference, np.float64)
        error = np.asarray(candidate, np.float64).reshape(reference.shape) - reference
        self.signal += float(np.sum(reference * reference))
        self.noise += float(np.sum(error * error))
        self.samples += 1

    @property
    def comparable(self) -> bool:
        """False when the reference never carried signal: no error ratio means anything then."""
        return self.samples > 0 and self.signal > 0.0 and math.isfinite(self.signal) and math.isfinite(self.noise)

    @property
    def sqnr_db(self) -> float | None:
        """Signal-to-quantization-noise ratio; +inf when identical, None when not comparable."""
        if not self.comparable:
            return None
        if self.noise == 0.0:
            return math.inf
        return 10.0 * math.log10(self.signal / self.noise)

    @property
    def rel_error(self) -> float | None:
        """||candidate - reference|| / ||reference||; None when not comparable. SQNR = -20 log10(rel_error)."""
        if not self.comparable:
            return None
        return math.sqrt(self.noise / self.signal)

    @property
    def noise_ratio(self) -> float | None:
        """noise / signal energy (rel_error squared): what adds up along a chain of independent errors."""
        return self.noise / self.signal if self.comparable else None

    def to_dict(self) -> dict:
        return {"signal": self.signal, "noise": self.noise, "samples": self.samples}

    @classmethod
    def from_dict(cls, data: dict) -> ErrorStats:
        return cls(float(data["signal"]), float(data["noise"]), int(data["samples"]))

    def summary(self, agreement: float | None = None) -> dict:
        """The JSON figures: SQNR (dB), relative error and, for a model output, top-1 agreement."""
        out = {"sqnr_db": rounded(self.sqnr_db), "rel_error": rounded(self.rel_error, 4)}
        if agreement is not None:
            out["top1_agreement"] = rounded(agreement, 4)
        return out


@dataclass
class RangeUse:
    """How much of its integer grid a quantized tensor spans (low: a range stretched by outliers), and the
    share of the reference's values that fell outside the grid (clipped)."""

    total: float = 0.0
    samples: int = 0
    outside: int = 0
    values: int = 0

    def add_codes(self, codes: np.ndarray, qmin: int, qmax: int) -> None:
        """One sample's integer codes of the quantized tensor; the grid is [qmin, qmax]."""
        codes = np.asarray(codes)
        if codes.size == 0 or qmax <= qmin:
            return
        self.total += float(int(np.max(codes)) - int(np.min(codes))) / float(qmax - qmin)
        self.samples += 1

    def add_dequantized(self, values: np.ndarray, scale: float | np.ndarray, zero_point: float | np.ndarray,
                        qmin: int, qmax: int) -> None:
        """One sample of the tensor as the runtime dequantized it: codes = round(v / scale) + zero point."""
        scale = np.asarray(scale, np.float64)
        if np.any(scale <= 0):
            return
        codes = np.rint(np.asarray(values, np.float64) / scale) + np.asarray(zero_point, np.float64)
        self.add_codes(codes, qmin, qmax)

    def add_reference(self, reference: np.ndarray | None, low: float | np.ndarray, high: float | np.ndarray) -> None:
        """Count the float reference's values beyond the grid's real bounds [low, high] (half a step allowed)."""
        if reference is None:
            return
        reference = np.asarray(reference, np.float64)
        self.outside += int(np.count_nonzero((reference < low) | (reference > high)))
        self.values += int(reference.size)

    @property
    def mean(self) -> float | None:
        return self.total / self.samples if self.samples else None

    @property
    def clipped(self) -> float | None:
        return self.outside / self.values if self.values else None


def grid_bounds(scale: float | np.ndarray, zero_point: float | np.ndarray, qmin: int,
                qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """The real values a (scale, zero point) grid reaches, widened by half a step (what rounding keeps)."""
    scale = np.asarray(scale, np.float64)
    zero_point = np.asarray(zero_point, np.float64)
    return (qmin - zero_point - 0.5) * scale, (qmax - zero_point + 0.5) * scale


def integer_range(dtype: str) -> tuple[int, int]:
    """[qmin, qmax] of an integer type name ('uint8', 'int8', 'int16', ...)."""
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


def output_error(run, samples, references) -> tuple[ErrorStats, float]:
    """Error of `run(sample)` against each reference output, and the share of samples whose top-1 agrees."""
    stats, agree = ErrorStats(), 0
    for sample, reference in zip(samples, references, strict=True):
        value = run(sample)
        stats.add(reference, value)
        agree += int(np.argmax(value) == np.argmax(reference))
    return stats, agree / max(len(samples), 1)


def agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of rows whose top-1 class is the same (what edgex eval calls agreement)."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    return float(np.mean(reference.reshape(len(reference), -1).argmax(1)
                         == candidate.reshape(len(candidate), -1).argmax(1)))


def rounded(value: float | None, digits: int = 2) -> float | None:
    """JSON-friendly rounding (inf stays a float, None stays None)."""
    if value is None or not math.isfinite(value):
        return value
    return round(value, digits)
