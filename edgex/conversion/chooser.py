"""Which passing int8 recipe to publish: the fastest, timed side by side in one short run.

Each candidate runs in interleaved blocks (A B C, A B C, ...) on the parity images, batch 1, in its runtime's
default configuration, so a change in machine load hits every candidate alike. A later recipe in the list
replaces the first passing one only when all its blocks beat all of the first one's: where the blocks overlap
the difference is noise, and the list's order (portable first) stands. On a loaded machine (load average
above the usable cores) no timing is trusted: the list's order decides, and the manifest says so.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgex.options import RECIPE_CHOICE, RecipeChoice

LOAD_ENV = "EDGEX_TEST_LOADAVG"  # test-only: pretend the 1-minute load average is this
SLOW_ENV = "EDGEX_TEST_SLOW_RECIPE"  # test-only: target/recipe whose every run sleeps 50 ms
_TEST_SLOWDOWN_S = 0.05


def machine_load() -> tuple[float, int]:
    """The 1-minute load average and the cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    override = os.environ.get(LOAD_ENV)
    return (float(override) if override else os.getloadavg()[0]), cores


def slowed_for_test(target: str, recipe: str | None, run: Callable) -> Callable:
    """Test-only: EDGEX_TEST_SLOW_RECIPE=target/recipe makes that recipe's runs 50 ms slower, so the chooser
    can be tested without two recipes that really differ in speed."""
    if recipe is None or os.environ.get(SLOW_ENV) != f"{target}/{recipe}":
        return run

    def slowed(batch):
        time.sleep(_TEST_SLOWDOWN_S)
        return run(batch)

    return slowed


def time_blocks(runs: Sequence[Callable], images: Sequence[np.ndarray],
                settings: RecipeChoice = RECIPE_CHOICE) -> list[list[float]]:
    """Milliseconds per image of each candidate, one entry per block, the candidates taking turns."""
    chosen = list(images[: settings.runs_per_block]) or list(images)
    for run in runs:  # warm-up: first-call allocations stay out of the blocks
        run(chosen[0][None])
    blocks: list[list[float]] = [[] for _ in runs]
    for _ in range(settings.blocks):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            for image in chosen:
                run(image[None])
            blocks[i].append(round(1000 * (time.perf_counter() - start) / len(chosen), 3))
    return blocks


def choose(names: Sequence[str], runs: Sequence[Callable], images: Sequence[np.ndarray],
           settings: RecipeChoice = RECIPE_CHOICE, timer=time_blocks, load=machine_load) -> dict:
    """Which of the passing recipes `names` (in list order) to publish: {"index", "chosen_by", "blocks_ms"}."""
    if len(names) < 2:
        return {"index": 0, "chosen_by": "the only passing recipe", "blocks_ms": {}}
    blocks = timer(runs, images, settings)
    timed = {name: b for name, b in zip(names, blocks, strict=True)}
    load1, cores = load()
    if load1 > settings.max_load_per_core * cores:
        return {"index": 0, "blocks_ms": timed, "timing_trusted": False,
                "chosen_by": f"list order: machine loaded (load average {load1:.1f} on {cores} cores), "
                             "timing not trusted"}
    medians = [float(np.median(b)) for b in blocks]
    fastest = int(np.argmin(medians))
    if fastest == 0:
        return {"index": 0, "blocks_ms": timed, "timing_trusted": True, "chosen_by": "fastest"}
    if max(blocks[fastest]) < min(blocks[0]):
        return {"index": fastest, "blocks_ms": timed, "timing_trusted": True,
                "chosen_by": f"fastest: every block faster than {names[0]}'s "
                             f"({medians[fastest]:.2f} against {medians[0]:.2f} ms)"}
    return {"index": 0, "blocks_ms": timed, "timing_trusted": True,
            "chosen_by": f"list order: {names[fastest]}'s blocks overlap {names[0]}'s, no clear difference"}


def contenders(passed: list[tuple[dict, Path]], settings: RecipeChoice = RECIPE_CHOICE) -> list[tuple[dict, Path]]:
    """The passing builds worth timing side by side: a recipe whose parity check (the same images, batch 1) ran
    `max_parity_ratio` times and `min_parity_gap_ms` slower than the fastest's cannot win (u8u8 against u8s8 on
    the 299x299 Xception, docs/performance.md), and is left out (its try says so). Sub-millisecond models are
    always timed: their parity p50 is noise, and timing them costs nothing."""
    best = min(built["try"]["latency_ms_p50"] for built, _ in passed)
    kept = []
    for built, folder in passed:
        latency = built["try"]["latency_ms_p50"]
        ratio = latency / best if best > 0 else 1.0
        if ratio > settings.max_parity_ratio and latency - best > settings.min_parity_gap_ms:
            built["try"]["not_timed"] = f"parity-check p50 {ratio:.2f}x the fastest's"
        else:
            kept.append((built, folder))
    return kept


def publish_fastest(target: str, passed: list[tuple[dict, Path]], images: list[np.ndarray], tries: list[dict],
                    reporter, timer) -> tuple[dict, Path, dict]:
    """The passing build to publish (the fastest, timed side by side), its folder, and why it was chosen;
    each timed try gets its blocks in the manifest."""
    all_names = [built["try"]["recipe"] for built, _ in passed]
    passed = contenders(passed)
    names = [built["try"]["recipe"] for built, _ in passed]
    runs = [slowed_for_test(target, name, built["run"]) for name, (built, _) in zip(names, passed, strict=True)]
    if len(names) > 1:
        with timer.step(f"time {len(names)} passing recipes side by side", artifact=f"{target}-int8"):
            choice = choose(names, runs, images)
    else:
        choice = choose(names, runs, images)
    slower = [name for name in all_names if name not in names]
    if slower and len(names) == 1:
        choice["chosen_by"] = (f"fastest: {', '.join(slower)} over {RECIPE_CHOICE.max_parity_ratio}x slower in "
                               "the parity check")
    for attempt in tries:
        blocks = choice["blocks_ms"].get(attempt["recipe"])
        if blocks:
            attempt["timed_ms_per_image"] = {"blocks": blocks, "median": float(np.median(blocks))}
    if len(all_names) > 1:
        reporter.info(f"{target} int8: {len(all_names)} recipes passed parity ({', '.join(all_names)}); publishing "
                      f"{names[choice['index']]}, {choice['chosen_by']}")
    built, folder = passed[choice["index"]]
    return built, folder, choice


def adopt(folder: Path, staging: Path) -> None:
    """Make the chosen try's files the staging folder's own; drop the other tries."""
    for child in list(folder.iterdir()):
        child.rename(staging / child.name)
    for child in list(staging.glob(".try-*")):
        shutil.rmtree(child)
