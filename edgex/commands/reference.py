"""The CLI reference (docs/cli.md), generated from the argparse parser so it cannot drift from the code.

`python -m edgex.commands.reference > docs/cli.md` rewrites it; tests/test_docs.py fails when it is stale.
"""

from __future__ import annotations

import argparse
import os

HEADER = ("# CLI reference\n\n"
          "Generated from edgex's argument parser by `python -m edgex.commands.reference > docs/cli.md`;\n"
          "a test fails when this page is stale. Back to the [README](../README.md).\n")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public listing of sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """Markdown: the top-level help, then each command's full --help, in the order `edgex --help` lists them."""
    from edgex.cli import build_parser

    os.environ["COLUMNS"] = "110"  # argparse wraps to the terminal: fix the width so the page is reproducible
    parser = build_parser()
    parts = [HEADER, "## edgex\n\n```text\n" + parser.format_help().rstrip() + "\n```\n"]
    for name, sub in _subcommands(parser).items():
        parts.append(f"## edgex {name}\n\n```text\n" + sub.format_help().rstrip() + "\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(cli_reference(), end="")
