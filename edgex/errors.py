"""Typed errors, each carrying the process exit code the CLI returns for it.

The codes follow sysexits.h where one fits, so scripts can tell a usage slip from
bad data from a failed quality gate without parsing messages.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_DATA = 65
EXIT_NO_INPUT = 66
EXIT_CANT_CREATE = 73
EXIT_IO = 74
EXIT_REFUSED = 77
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0    success
  1    internal error (a bug; rerun with --debug for the traceback)
  2    usage error (unknown flag, target or value)
  3    parity gate failed (an artifact disagrees with the source model)
  65   bad model or image data
  66   input missing or empty
  73   cannot create the output
  74   I/O error or disk full
  77   refused by the safety policy (e.g. an .h5 model without --trust-model)
  130  interrupted"""


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


class MissingDependencyError(UsageError):
    """A target needs an optional extra that is not installed."""
