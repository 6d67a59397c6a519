"""Keep stdout for machine-readable output while native libraries log freely."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def stdout_reserved(silence_native: bool = False) -> Iterator[TextIO]:
    """Send everything written to fd 1 (C++ logs of TensorFlow, LiteRT, NNCF bars) to stderr.

    Yields a stream on the real stdout, so `--json` output stays parseable. With `silence_native`
    (`-q` without `--debug`) fd 1 and fd 2 both go to /dev/null while the command works, since
    TensorFlow, tf2onnx and NNCF log there whatever their log levels say; the one-line error of a
    failure is written by the CLI after this block has restored stderr.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out = os.dup(1)
    saved_err = os.dup(2) if silence_native else None
    if silence_native:
        sink = os.open(os.devnull, os.O_WRONLY)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        os.close(sink)
    else:
        os.dup2(2, 1)
    real = os.fdopen(os.dup(saved_out), "w")
    try:
        yield real
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.close(saved_out)
        if saved_err is not None:
            os.dup2(saved_err, 2)
            os.close(saved_err)
        real.flush()
        real.close()
