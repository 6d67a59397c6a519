"""Where a conversion spends its time and memory: one entry per step, for `edgex convert --timings`.

Memory is reported three ways: this process's own high-water mark, the largest finished child's, and the
peak of the SUM of this process and all its descendants, sampled every 0.1 s by a thread (what a build box
with a memory limit sees: tf2onnx's child runs beside edgex, and their peaks add up). The same thread
records the CPU seconds of the whole tree, so each step also gets the CPU time spent while it ran: unlike
wall time, that does not grow when other jobs load the machine.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SAMPLE_INTERVAL_S = 0.1
_RESCAN_EVERY = 10  # samples between two scans of /proc for new children (the scan is the costly part)


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


def tree_cpu_s(pids: list[int] | None = None) -> float:
    """CPU seconds (user + system) of this process, its finished children and its live descendants
    (`pids`, default: looked up now)."""
    ticks = os.sysconf("SC_CLK_TCK")
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + done.ru_utime + done.ru_stime
    for pid in descendants(os.getpid()) if pids is None else pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def tree_rss_mb(root: int | None = None, pids: list[int] | None = None) -> float:
    """The resident memory of `root` (default: this process) and its descendants (`pids`, default: looked
    up now), summed (MB)."""
    root = os.getpid() if root is None else root
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in [root, *(descendants(root) if pids is None else pids)]:
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
        self.cpu: list[tuple[float, float]] = []  # (perf_counter, tree CPU seconds), one per sample
        self._children: list[int] = []
        self._lock = threading.Lock()  # StepTimer samples too, from the converting thread
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
        with self._lock:
            if self.samples % _RESCAN_EVERY == 0:
                self._children = descendants(os.getpid())
            self.peak_mb = max(self.peak_mb, tree_rss_mb(pids=self._children))
            self.cpu.append((time.perf_counter(), tree_cpu_s(self._children)))
            self.samples += 1
            return self.peak_mb

    def cpu_between(self, start: float, end: float) -> float | None:
        """Tree CPU seconds spent between two perf_counter() instants, read off the samples around them."""
        import bisect

        times = [t for t, _ in self.cpu]
        if not times or start > times[-1]:
            return None

        def at(instant: float) -> float:
            i = bisect.bisect_left(times, instant)
            if i == 0:
                return self.cpu[0][1]
            if i == len(times):
                return self.cpu[-1][1]
            (t0, c0), (t1, c1) = self.cpu[i - 1], self.cpu[i]
            return c0 + (c1 - c0) * (instant - t0) / max(t1 - t0, 1e-9)

        return max(at(end) - at(start), 0.0)

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

    def add(self, name: str, seconds: float, ended: float | None = None, cpu: bool = True, **labels) -> None:
        """One step of `seconds` that ended at perf_counter() `ended` (default: now); `cpu=False` for a step
        whose window is unknown (it ran in the background)."""
        peak = peak_rss_mb()
        entry = {"step": name, "seconds": round(seconds, 3), "peak_rss_mb": peak}
        if self.sampler is not None:
            peak["tree_sum"] = round(self.sampler.sample(), 1)
            end = time.perf_counter() if ended is None else ended
            spent = self.sampler.cpu_between(end - seconds, end) if cpu else None
            if spent is not None:
                entry["cpu_s"] = round(spent, 2)
        self.steps.append({**entry, **labels})


def process_cpu_s() -> float:
    """User + system seconds of this process and its finished children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + done.ru_utime + done.ru_stime


def timings_table(steps: list[dict], wall_s: float, cpu_at_start: float = 0.0) -> str:
    """The --timings table: shared steps once, then each artifact's steps, then the wall time and peaks.

    `cpu_at_start`: process_cpu_s() when the conversion began (a script that did other work first)."""
    rows, seen = [], set()
    for entry in steps:
        key = (entry.get("artifact"), entry["step"], entry["seconds"])
        if key in seen:
            continue
        seen.add(key)
        peak = entry["peak_rss_mb"]
        cpu = f"{entry['cpu_s']:.1f}" if "cpu_s" in entry else "n/a"
        rows.append(f"| {entry.get('artifact') or 'shared'} | {entry['step']} | {entry['seconds']:.1f} | {cpu} | "
                    f"{peak['process']:.0f} | {peak['largest_child']:.0f} | {_summed(peak)} |")
    final = peak_rss_mb()
    summed = max((s["peak_rss_mb"].get("tree_sum", 0.0) for s in steps), default=0.0)
    cpu = process_cpu_s() - cpu_at_start
    return "\n".join(["| artifact | step | seconds | CPU s (edgex + children) | peak RSS MB (edgex) "
                      "| peak RSS MB (largest child) | peak RSS MB (edgex + children, summed) |",
                      "|---|---|---|---|---|---|---|", *rows,
                      f"| all | wall time | {wall_s:.1f} | {cpu:.1f} | {final['process']:.0f} "
                      f"| {final['largest_child']:.0f} "
                      f"| {_summed({'tree_sum': summed} if summed else {})} |",
                      f"(summed: VmRSS of edgex and every descendant process read from /proc every "
                      f"{SAMPLE_INTERVAL_S:g} s, added up per sample, peak so far at the end of each step; "
                      "CPU s: user + system seconds of the same processes while the step ran, background "
                      "children included)"])


def _summed(peak: dict) -> str:
    return f"{peak['tree_sum']:.0f}" if "tree_sum" in peak else "n/a"
