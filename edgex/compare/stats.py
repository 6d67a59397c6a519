"""The two statistics behind the verdicts: McNemar's exact test for paired accuracy, and a run's latency noise.

Standard library only (math): no SciPy import on the gate's path.
"""

from __future__ import annotations

import math
import statistics


def mcnemar_exact(only_baseline_right: int, only_new_right: int) -> float:
    """Two-sided exact McNemar p-value: the chance of a split this uneven (or more) among the discordant images
    if each was equally likely to flip either way (binomial, n = discordant, p = 1/2).

    Images both runs got right (or both wrong) say nothing about a difference, so only flips count. Python's
    integers are exact and int / int rounds correctly, so this holds for any number of images.
    """
    if only_baseline_right < 0 or only_new_right < 0:
        raise ValueError("flip counts cannot be negative")
    n = only_baseline_right + only_new_right
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_baseline_right, only_new_right) + 1))
    return min(1.0, 2 * tail / 2**n)


def relative_spread(rounds: list[float] | None) -> float | None:
    """Round-to-round spread of one run: the standard deviation of its per-round p50s over their median
    (None with fewer than two rounds, e.g. a report from before bench kept rounds)."""
    values = [v for v in rounds or [] if v is not None]
    if len(values) < 2:
        return None
    middle = statistics.median(values)
    return statistics.stdev(values) / middle if middle > 0 else None


def combined_noise(baseline: float | None, new: float | None) -> float | None:
    """The spread of a difference of two independent runs: the root sum of squares of their own spreads."""
    if baseline is None or new is None:
        return None
    return math.hypot(baseline, new)
