"""Where a conversion spends its time and memory: one entry per step, for `edgex convert --timings`."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager


def peak_rss_mb() -> dict[str, float]:
    """High-water marks so far (MB): this process, and its largest finished child (tf2onnx runs in one)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"process": round(own, 1), "largest_child": round(children, 1)}


class StepTimer:
    """Steps in the order they ran: name, seconds, and the peak RSS reached by the end of the step."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    @contextmanager
    def step(self, name: str, **labels) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start, **labels)

    def add(self, name: str, seconds: float, **labels) -> None:
        self.steps.append({"step": name, "seconds": round(seconds, 3), "peak_rss_mb": peak_rss_mb(), **labels})


def timings_table(steps: list[dict], wall_s: float) -> str:
    """The --timings table: shared steps once, then each artifact's steps, then the wall time and peak."""
    rows, seen = [], set()
    for entry in steps:
        key = (entry.get("artifact"), entry["step"], entry["seconds"])
        if key in seen:
            continue
        seen.add(key)
        peak = entry["peak_rss_mb"]
        rows.append(f"| {entry.get('artifact') or 'shared'} | {entry['step']} | {entry['seconds']:.1f} | "
                    f"{peak['process']:.0f} | {peak['largest_child']:.0f} |")
    final = peak_rss_mb()
    return "\n".join(["| artifact | step | seconds | peak RSS MB (edgex) | peak RSS MB (largest child) |",
                      "|---|---|---|---|---|", *rows,
                      f"| all | wall time | {wall_s:.1f} | {final['process']:.0f} | {final['largest_child']:.0f} |"])
