"""Typed errors, each carrying the process exit code the CLI returns for it.

The codes follow sysexits.h where one fits, so scripts can tell a usage slip from
bad data from a failed quality gate without parsing messages.
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_SOME_FAILED = 4
EXIT_DATA = 65
EXIT_NO_INPUT = 66
EXIT_CANT_CREATE = 73
EXIT_IO = 74
EXIT_REMOTE = 75
EXIT_REFUSED = 77
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM

EXIT_CODES_HELP = """exit codes:
  0    success
  1    internal error (a bug; rerun with --debug for the traceback)
  2    usage error (unknown flag, target, value or config key; with a did-you-mean)
  3    parity gate or accuracy budget missed (an artifact disagrees with the source model); or a
       compare --fail-on rule fired (edgex compare, bench/run with a baseline)
  4    some artifacts (bench/eval/run) or images (predict) failed; the report or its line says which and why
  65   bad model or image data (corrupt, truncated, misnamed, or crashes its parser)
  66   input missing or empty
  73   cannot create or lock the output (another edgex run holds it)
  74   I/O error or disk full (also: a copy to a remote device arrived corrupted)
  75   remote or transient failure (device unreachable, connection lost, deadline passed); retry
  77   refused by the safety policy (code-carrying model without --trust-model), or by a remote
       device (key not accepted, host key unknown or changed)
  130  interrupted (SIGINT, Ctrl-C): no partial artifact, staging folder or lock is left
  143  terminated (SIGTERM): same cleanup as 130"""


class EdgexError(Exception):
    """Base class: a message fit for one line on stderr, and an exit code."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}. {self.hint}" if self.hint else text


class UsageError(EdgexError):
    exit_code = EXIT_USAGE


class ArgumentError(UsageError, TypeError):
    """A Python API call with a keyword it does not take: a TypeError to Python, a usage error (2) to edgex.
    Its traceback line carries the hint too: that is all a Python caller reads."""

    def __str__(self) -> str:
        return self.one_line()


class GateError(EdgexError):
    """An artifact was built but does not agree with its source closely enough."""

    exit_code = EXIT_GATE


class DataError(EdgexError):
    exit_code = EXIT_DATA


class MissingInputError(EdgexError):
    exit_code = EXIT_NO_INPUT


class OutputError(EdgexError):
    exit_code = EXIT_CANT_CREATE


class IOFailure(EdgexError):
    exit_code = EXIT_IO


class RefusedError(EdgexError):
    exit_code = EXIT_REFUSED


class RemoteError(EdgexError):
    """The device could not be reached, the connection dropped or the deadline passed: worth a retry."""

    exit_code = EXIT_REMOTE


class NonFiniteOutputError(EdgexError):
    """The model produced NaN/Inf outputs: not a prediction. `inputs` names the images, `outputs` holds the
    raw rows (edgex.load().predict raises it; the CLI turns it into a failed image or artifact, exit 4)."""

    exit_code = EXIT_SOME_FAILED

    def __init__(self, message: str, hint: str | None = None, inputs: list[str] | None = None, outputs=None):
        super().__init__(message, hint)
        self.inputs = list(inputs or [])
        self.outputs = outputs


class MissingDependencyError(UsageError):
    """A target needs an optional extra that is not installed."""


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}


def is_disk_full(exc: BaseException) -> bool:
    """An OSError (or a library error wrapping one) that means the disk or a size limit is full."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return True
    text = str(exc).lower()
    return "no space left on device" in text or "file too large" in text or "disk quota exceeded" in text


def output_failure(exc: BaseException, path, action: str = "write") -> EdgexError:
    """The typed error for a failed write: 74 for disk full or I/O, 73 when the place is not writable."""
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    if is_disk_full(exc):
        return IOFailure(f"disk full while trying to {action} {path} ({reason}); nothing was left half-written",
                         "Free some space or choose another --output.")
    if isinstance(exc, OSError) and exc.errno in _NOT_WRITABLE:
        return OutputError(f"cannot {action} {path}: {reason}", "Choose a writable --output.")
    return IOFailure(f"I/O error while trying to {action} {path}: {reason}", "Check the disk and permissions.")
