"""Progress reporting that the pipeline can call without knowing about terminals."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class Reporter:
    """Silent by default; the CLI swaps in `RichReporter`."""

    def info(self, message: str) -> None:  # noqa: B027 (optional hook)
        pass

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[], None]]:
        yield lambda: None


class RichReporter(Reporter):
    """Progress bars and status lines on `file` (default stderr)."""

    def __init__(self, file=None) -> None:
        from rich.console import Console

        self.console = Console(file=file, stderr=file is None)

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn

        if not self.console.is_terminal:  # a pipe or a log file gets the status lines, not bar redraws
            yield lambda: None
            return
        columns = [SpinnerColumn(), "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=True) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda: progress.advance(task_id)
