"""The `edgex` command line: thin commands over the API. Heavy frameworks load only inside commands."""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys

from edgex import __version__
from edgex.commands import COMMANDS
from edgex.errors import EXIT_CODES_HELP, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, EdgexError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and a did-you-mean for mistyped flags."""

    def error(self, message: str):
        if "unrecognized arguments:" in message:
            flags = _all_flags(self)
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word, flags, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
                    break
        sys.stderr.write(f"edgex: error: {message}. See '{self.prog} --help'.\n")
        raise SystemExit(EXIT_USAGE)


def _all_flags(parser: argparse.ArgumentParser) -> list[str]:
    flags = []
    for action in parser._actions:  # argparse exposes no public listing
        flags += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags += _all_flags(sub)
    return flags


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgex",
        description="Take a trained Xception classifier to the edge: quantize, convert, verify.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgex {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    for name in COMMANDS:
        importlib.import_module(f"edgex.commands.{name}").add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    parser = build_parser()
    from edgex.artifacts.signals import Terminated, handle_signals

    try:
        with handle_signals():  # SIGTERM/SIGHUP unwind like Ctrl-C: staging and locks are cleaned up
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help()
                return EXIT_USAGE
            return args.run(args)
    except Terminated as stop:
        sys.stderr.write(f"edgex: error: terminated by {stop}; nothing partial was left in the output\n")
        return stop.exit_code
    except EdgexError as error:
        if debug:
            raise
        sys.stderr.write(f"edgex: error: {error.one_line()}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("edgex: error: interrupted (SIGINT); nothing partial was left in the output\n")
        return EXIT_INTERRUPTED
    except Exception as error:  # the last line of defence: one line, exit 1
        if debug:
            raise
        sys.stderr.write(f"edgex: error: internal error: {type(error).__name__}: {error}. "
                         "Rerun with --debug for the traceback and report it.\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
