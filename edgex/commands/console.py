"""Keep stdout for machine-readable output while native libraries log freely."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def stdout_reserved() -> Iterator[TextIO]:
    """Send everything written to fd 1 (C++ logs of TensorFlow, LiteRT, NNCF bars) to stderr.

    Yields a stream on the real stdout, so `--json` output stays parseable.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(os.dup(saved), "w")
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        real.flush()
        real.close()
