"""Signals as exceptions, so every `finally` (staging cleanup, lock release) runs on SIGTERM too.

Python turns SIGINT into KeyboardInterrupt but dies on SIGTERM without unwinding; `handle_signals`
makes SIGTERM/SIGHUP raise `Terminated`, which the CLI maps to exit 128+signal (143 for SIGTERM).
`deferred_signals` holds signals back across a few critical lines (the rename that publishes an
artifact, the removal of a staging folder), so an interrupt lands before or after them, never inside.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

_HANDLED = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)
_DEFERRED = tuple(s for s in (signal.SIGINT, *_HANDLED))


class Terminated(BaseException):  # like KeyboardInterrupt, not an "Error"
    """The process was asked to stop by a signal other than SIGINT."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_terminated(signum, _frame) -> None:
    raise Terminated(signum)


def _default_handlers_in_child() -> None:
    """A forked child (a library's multiprocessing helper) must die on SIGTERM as usual.

    With edgex's Python-level handler it would only set a flag, and a child stuck in C code (a
    fork from a threaded process can deadlock in the dynamic loader) would never exit, so the
    parent's `terminate(); join()` would wait forever.
    """
    for s in _HANDLED:
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


_fork_hook_registered = False


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Terminated` (main thread only; a no-op elsewhere)."""
    global _fork_hook_registered
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_default_handlers_in_child)
        _fork_hook_registered = True
    previous = {s: signal.signal(s, _raise_terminated) for s in _HANDLED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back for the block; one that arrived meanwhile is acted on right after it.

    Python runs signal handlers in the main thread whichever thread the OS delivered to (TensorFlow and
    ONNX Runtime start many), so swapping the Python-level handlers for a recorder is what defers them;
    masking the main thread alone would not.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: arrived.append(signum)) for s in _DEFERRED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if arrived:
            signum = arrived[0]
            handler = previous.get(signum)
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def pause_point(name: str) -> None:
    """TEST-ONLY hook: with EDGEX_TEST_PAUSE_AT=name, touch $EDGEX_TEST_PAUSE_FILE and sleep up to 600 s.

    Lets the fault tests deliver SIGINT/SIGTERM at a precise moment (e.g. `publish`, while the
    staging folder holds a finished model but no manifest). Unset in normal use: a no-op.
    """
    if os.environ.get("EDGEX_TEST_PAUSE_AT") != name:
        return
    marker = os.environ.get("EDGEX_TEST_PAUSE_FILE")
    if marker:
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(600)
