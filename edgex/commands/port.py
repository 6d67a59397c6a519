"""`edgex port`: a Keras Xception to edgex's PyTorch Xception (safetensors + JSON sidecar), verified."""

from __future__ import annotations

import argparse
import json

from edgex.commands.console import reporter_for, stdout_reserved
from edgex.errors import EXIT_CODES_HELP
from edgex.options import PORT


def add_parser(commands) -> None:
    port = commands.add_parser(
        "port",
        help="port a Keras Xception to PyTorch (safetensors + sidecar), verified against Keras",
        description="Map every weight of a Keras Xception (bare, or backbone + pooling + dense head) onto "
        "edgex's PyTorch Xception, check both give the same logits, and write OUTPUT plus OUTPUT.json "
        "(architecture, classes, preprocessing). Nothing is written when the logits differ (exit 3).",
        epilog="example:\n  edgex port --model kw.keras --output kw.safetensors\n"
        "  edgex convert --model kw.safetensors --target onnx\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    port.add_argument("--model", help=".keras file (default: the embedded kitchenware Xception)")
    port.add_argument("--output", required=True, help="the .safetensors file to write (sidecar: same name, .json)")
    port.add_argument("--verify-data", help="folder of images to verify the port on, besides 4 noise images "
                      "(default for the embedded model: its 18 photos)")
    port.add_argument("--tolerance", type=float, default=PORT.tolerance,
                      help="largest allowed |Keras - PyTorch| logit difference (default %(default)s)")
    port.add_argument("--trust-model", action="store_true", help="allow .h5 and Lambda layers when loading")
    port.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    port.add_argument("-q", "--quiet", action="store_true", help="no status lines")
    port.add_argument("--debug", action="store_true", help="show tracebacks")
    port.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgex.errors import MissingInputError
    from edgex.sources.port import port_keras

    verify = Path(args.verify_data) if args.verify_data else None
    if verify is not None and not verify.is_dir():
        raise MissingInputError(f"verification folder {verify} does not exist", "Pass an image folder.")
    with stdout_reserved(silence_native=not args.debug) as stdout:
        reporter = reporter_for(args, stdout)
        summary = port_keras(Path(args.model) if args.model else None, Path(args.output), verify_data=verify,
                             tolerance=args.tolerance, trust_model=args.trust_model, reporter=reporter)
        check = summary["verification"]
        if args.json:
            print(json.dumps({"ok": True, **summary}, indent=2), file=stdout)
        elif not args.quiet:
            print(f"{summary['output']}: max |logit diff| {check['max_abs_logit_diff']:.3g} on {check['inputs']} "
                  f"inputs, top-1 agreement {check['top1_agreement']}/{check['inputs']}", file=stdout)
    return 0
