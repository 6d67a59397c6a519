"""`edgex inspect MODEL`: what edgex sees in a model, before any conversion."""

from __future__ import annotations

import argparse
import json

from edgex.errors import EXIT_CODES_HELP


def add_parser(commands) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="show what edgex sees in a model: architecture, input contract, layers bypassed, classes, targets",
        description="Load a source model (nothing is converted) and print its architecture check, inputs and "
        "outputs, the inferred preprocessing and where it came from, the layers bypassed at inference, the class "
        "names and the targets that can take it.",
        epilog="example:\n  edgex inspect my_xception.keras\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("model", nargs="?", help="source model (default: the embedded kitchenware Xception)")
    inspect.add_argument("--trust-model", action="store_true",
                         help="allow formats that can run code (.h5, SavedModel, .pt2); trusted authors only")
    inspect.add_argument("--json", action="store_true", help="print the findings as JSON on stdout")
    inspect.add_argument("--debug", action="store_true", help="show tracebacks")
    inspect.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgex.commands.console import stdout_reserved
    from edgex.sources.inspect import inspect, render

    with stdout_reserved(silence_native=not args.debug) as stdout:
        info = inspect(Path(args.model) if args.model else None, trust_model=args.trust_model)
        print(json.dumps(info, indent=2, default=str) if args.json else render(info), file=stdout)
    return 0
