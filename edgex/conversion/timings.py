"""Where a conversion spends its time and memory: one entry per step, for `edgex convert --timings`.

Memory is reported three ways: this process's own high-water mark, the largest finished child's, and the
peak of the SUM of this process and all its descendants, sampled every 0.1 s by a thread (what a build box
with a memory limit sees: tf2onnx's child runs beside edgex, and their peaks add up).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SAMPLE_INTERVAL_S = 0.1


def peak_rss_mb() -> dict[str, float]:
    """High-water marks so far (MB): this process, and its largest finished child (tf2onnx runs in one)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"process": round(own, 1), "largest_child": round(children, 1)}


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children, grandchildren, ...), from /proc's parent links."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split(maxsplit=2)[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_rss_mb(root: int | None = None) -> float:
    """The resident memory of `root` (default: this process) and all its descendants, summed (MB)."""
    root = os.getpid() if root is None else root
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in [root, *descendants(root)]:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


class TreeSampler:
    """A daemon thread that keeps the peak of tree_rss_mb() until stop()."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        if os.path.isdir("/proc"):  # Linux; elsewhere the summed column stays empty
            self._thread = threading.Thread(target=self._run, name="edgex-rss-sampler", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval_s):
                return

    def sample(self) -> float:
        self.peak_mb = max(self.peak_mb, tree_rss_mb())
        self.samples += 1
        return self.peak_mb

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class StepTimer:
    """Steps in the order they ran: name, seconds, and the peak RSS reached by the end of the step."""

    def __init__(self, sampler: TreeSampler | None = None) -> None:
        self.steps: list[dict] = []
        self.sampler = sampler

    @contextmanager
    def step(self, name: str, **labels) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start, **labels)

    def add(self, name: str, seconds: float, **labels) -> None:
        peak = peak_rss_mb()
        if self.sampler is not None:
            peak["tree_sum"] = round(self.sampler.sample(), 1)
        self.steps.append({"step": name, "seconds": round(seconds, 3), "peak_rss_mb": peak, **labels})


def timings_table(steps: list[dict], wall_s: float) -> str:
    """The --timings table: shared steps once, then each artifact's steps, then the wall time and peaks."""
    rows, seen = [], set()
    for entry in steps:
        key = (entry.get("artifact"), entry["step"], entry["seconds"])
        if key in seen:
            continue
        seen.add(key)
        peak = entry["peak_rss_mb"]
        rows.append(f"| {entry.get('artifact') or 'shared'} | {entry['step']} | {entry['seconds']:.1f} | "
                    f"{peak['process']:.0f} | {peak['largest_child']:.0f} | {_summed(peak)} |")
    final = peak_rss_mb()
    summed = max((s["peak_rss_mb"].get("tree_sum", 0.0) for s in steps), default=0.0)
    return "\n".join(["| artifact | step | seconds | peak RSS MB (edgex) | peak RSS MB (largest child) "
                      "| peak RSS MB (edgex + children, summed) |",
                      "|---|---|---|---|---|---|", *rows,
                      f"| all | wall time | {wall_s:.1f} | {final['process']:.0f} | {final['largest_child']:.0f} "
                      f"| {_summed({'tree_sum': summed} if summed else {})} |",
                      f"(summed: VmRSS of edgex and every descendant process read from /proc every "
                      f"{SAMPLE_INTERVAL_S:g} s, added up per sample, peak so far at the end of each step)"])


def _summed(peak: dict) -> str:
    return f"{peak['tree_sum']:.0f}" if "tree_sum" in peak else "n/a"
