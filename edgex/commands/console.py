"""Keep stdout for machine-readable output while native libraries log freely."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO


def reporter_for(args, stdout: TextIO):
    """edgex's own status lines: on stdout, or on stderr with --json (stdout is the JSON); none with -q."""
    from edgex.progress import Reporter, RichReporter

    if getattr(args, "quiet", False):
        return Reporter()
    return RichReporter(getattr(stdout, "edgex_stderr", None) if getattr(args, "json", False) else stdout)


@contextlib.contextmanager
def stdout_reserved(silence_native: bool = True) -> Iterator[TextIO]:
    """Keep the terminal for edgex's own lines while native libraries log freely.

    Yields a stream on the real stdout (its `edgex_stderr` attribute: one on the real stderr). With
    `silence_native` (every command unless `--debug`) fd 1 and fd 2 go to /dev/null while the
    command works, since TensorFlow, tf2onnx, LiteRT and NNCF log there whatever their log levels
    say; without it fd 1 goes to stderr, so `--json` stays parseable. The one-line error of a
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
    real.edgex_stderr = os.fdopen(os.dup(saved_err if saved_err is not None else 2), "w")
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
        real.edgex_stderr.flush()
        real.edgex_stderr.close()
