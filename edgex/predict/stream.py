"""`edgex predict` over files: a line per image as soon as it is known, then JSON or CSV.

The loop, the line and the CSV row are the bundle's predict.py's own (edgex.predict.standalone), fed by
edgex's preprocessing and runtime adapters through a `Predictor`: the command and the bundle print and
write the same thing. A progress bar is drawn only on a terminal, never into a pipe or a file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from edgex.errors import EXIT_SOME_FAILED, DataError, MissingInputError, output_failure
from edgex.predict.model import Predictor
from edgex.predict.standalone import ImageError, Row, classify, expand_inputs, format_line, write_csv


@dataclass
class PredictOptions:
    model: Path
    images: list[str]
    top_k: int = 5
    batch: int = 1
    device: str = "cpu"
    threads: int | None = None
    trust_model: bool = False
    json: bool = False
    csv: Path | None = None
    quiet: bool = False


def predict_files(options: PredictOptions, stdout: TextIO, stderr: TextIO) -> int:
    """Print (or collect) every image's result; return 0, or EXIT_SOME_FAILED when some image failed."""
    paths = expand_inputs(options.images)
    if not any(os.path.isfile(p) for p in paths):
        raise MissingInputError(f"no images in {' '.join(options.images)}",
                                'Pass image files, folders or quoted globs ("photos/**/*.jpg").')
    rows: list[Row] = []
    with Predictor(options.model, device=options.device, threads=options.threads, trust_model=options.trust_model,
                   top_k=options.top_k) as predictor:
        show = not options.quiet and len(paths) > 1
        with _lines(stderr if options.json else stdout, len(paths), show, printing=not options.json) as (emit, tick):
            for row in classify(paths, _loader(predictor), predictor.run, options.batch, options.top_k,
                                predictor.classes, predictor.output_kind):
                rows.append(row)
                emit(format_line(row))
                tick()
        described = _describe(predictor)
    failed = sum(row.error is not None for row in rows)
    if options.csv is not None:
        try:
            write_csv(str(options.csv), rows)
        except OSError as exc:
            raise output_failure(exc, options.csv) from exc
    if options.json:
        print(json.dumps({**described, "count": len(rows), "failed": failed, "images": [_as_dict(r) for r in rows]},
                         indent=2), file=stdout)
    if not options.quiet:
        if options.csv is not None:
            print(f"wrote {options.csv} ({len(rows)} rows)", file=stderr)
        if failed:
            print(f"edgex: {failed} of {len(rows)} images failed", file=stderr)
    return EXIT_SOME_FAILED if failed else 0


def _loader(predictor: Predictor) -> Callable[[str], np.ndarray]:
    """predictor.load_image, its DataError an ImageError whose message does not repeat the path."""
    def load(path: str) -> np.ndarray:
        try:
            return predictor.load_image(path)
        except DataError as exc:
            raise ImageError(exc.message.replace(f" image {path}", "")) from exc

    return load


@contextlib.contextmanager
def _lines(stream: TextIO, total: int, show: bool, printing: bool
           ) -> Iterator[tuple[Callable[[str], None], Callable[[], None]]]:
    """(emit a result line, advance the bar): the bar only when `show` and `stream` is a terminal."""
    def plain(line: str) -> None:
        if printing:
            print(line, file=stream, flush=True)

    if not show or not stream.isatty():
        yield plain, lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream), transient=True, redirect_stdout=False,
                  redirect_stderr=False) as progress:
        task = progress.add_task("predicting", total=total)

        def above(line: str) -> None:  # printed above the bar, which redraws below it
            if printing:
                progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

        yield above, lambda: progress.advance(task)


def _describe(predictor: Predictor) -> dict:
    info = getattr(predictor.session, "info", None) or {}
    return {"model": str(predictor.path), "kind": predictor.kind, "runtime": info.get("runtime"),
            "runtime_version": info.get("version"), "output_kind": predictor.output_kind,
            "classes": predictor.classes}


def _as_dict(row: Row) -> dict:
    if row.error is not None:
        return {"path": row.path, "label": None, "probability": None, "top_k": [], "error": row.error}
    return {"path": row.path, "label": row.top[0][0], "probability": row.top[0][1],
            "top_k": [{"label": label, "probability": p} for label, p in row.top], "error": None}
