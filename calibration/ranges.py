"""Activation range estimation that survives outlier images, in constant memory.

Global min/max over the calibration set lets one unusual image stretch a range ~3x in
Xception's middle flow, and int8 accuracy collapses with TFLite's own calibrator (the README has
the measured top-1). Averaging each image's own min and max (what NNCF does) keeps the
range where most images live. Each estimator keeps a running sum per tensor, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgex.options import CALIBRATION, RANGE_ESTIMATORS


@dataclass
class RangeCollector:
    """Accumulates per-sample (min, max) of named tensors and reduces them to one range each."""

    method: str = CALIBRATION.method
    _sum_min: dict[str, float] = field(default_factory=dict)
    _sum_max: dict[str, float] = field(default_factory=dict)
    _min: dict[str, float] = field(default_factory=dict)
    _max: dict[str, float] = field(default_factory=dict)
    _count: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from edgex.errors import UsageError

        if self.method not in RANGE_ESTIMATORS:
            raise UsageError(
                f"unknown calibration method {self.method!r}", f"Use one of: {', '.join(RANGE_ESTIMATORS)}."
            )

    def observe(self, name: str, sample_min: float, sample_max: float) -> None:
        """Record one sample's range of one tensor."""
        from edgex.errors import DataError

        lo, hi = float(sample_min), float(sample_max)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise DataError(
                f"tensor {name!r} holds NaN or Inf during calibration",
                "Check the calibration images and the preprocessing (scale, layout).",
            )
        self._sum_min[name] = self._sum_min.get(name, 0.0) + lo
        self._sum_max[name] = self._sum_max.get(name, 0.0) + hi
        self._min[name] = min(self._min.get(name, lo), lo)
        self._max[name] = max(self._max.get(name, hi), hi)
        self._count[name] = self._count.get(name, 0) + 1

    def observe_array(self, name: str, values: np.ndarray) -> None:
        """Record one sample's tensor (its first axis is a batch of one)."""
        self.observe(name, np.min(values), np.max(values))

    def ranges(self) -> dict[str, tuple[float, float]]:
        """One (low, high) per tensor; always contains 0, as int8 zero points require."""
        out = {}
        for name, count in self._count.items():
            if self.method == "minmax":
                lo, hi = self._min[name], self._max[name]
            else:
                lo, hi = self._sum_min[name] / count, self._sum_max[name] / count
            out[name] = (min(lo, 0.0), max(hi, 0.0))
        return out

    def __len__(self) -> int:
        return len(self._count)
