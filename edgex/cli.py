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
            for word in message.split(":", 1)[1].split():
                hint = _flag_hint(self, word, sys.argv[1:])
                if hint:
                    message += f" ({hint})"
                    break
        command = _command_named(self, sys.argv[1:])
        sys.stderr.write(f"edgex: error: {message}. See '{self.prog}{f' {command}' if command else ''} --help'.\n")
        raise SystemExit(EXIT_USAGE)


def _flag_hint(parser: argparse.ArgumentParser, word: str, argv: list[str]) -> str | None:
    """A close flag of the command being run, or which commands have `word` when this one does not."""
    commands = _subcommands(parser)
    name = _command_named(parser, argv)
    own = _all_flags(commands[name]) if name else _all_flags(parser)
    elsewhere = sorted(other for other, sub in commands.items() if word in _all_flags(sub))
    if name and elsewhere and word not in own:
        return f"{word} is a flag of edgex {', '.join(elsewhere)}, not of edgex {name}"
    close = [flag for flag in difflib.get_close_matches(word, own, n=2) if flag != word]
    return f"did you mean {close[0]}?" if close else None


def _command_named(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The subcommand being run (`predict` in `edgex predict ...`), or None."""
    return next((arg for arg in argv if arg in _subcommands(parser)), None)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse exposes no public listing
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


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
