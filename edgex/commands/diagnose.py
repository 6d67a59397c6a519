"""`edgex diagnose`: which layers of an int8 artifact carry its quantization error."""

from __future__ import annotations

import argparse
import json

from edgex.errors import EXIT_CODES_HELP


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "diagnose",
        help="per-layer quantization error of an int8 artifact, worst layer first",
        description="Run an int8 artifact and its float reference on calibration images and report, per "
        "quantized layer, the SQNR and relative error of its output against float and the model-output "
        "error when only that layer is quantized, worst first, with the Keras layer and the matching "
        "nodes of the other formats.",
        epilog="example:\n  edgex diagnose edgex-out/model/tflite-int8 --calib-data images/ --top 10\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("artifact", help="an int8 artifact folder written by edgex convert")
    parser.add_argument("--calib-data", required=True, help="folder of images (never the test set)")
    parser.add_argument("--samples", type=int, default=8, help="images to measure on (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image subset (default 0)")
    parser.add_argument("--top", type=int, default=15, help="layers to list (default 15; --json lists all)")
    parser.add_argument("--no-isolated", action="store_true",
                        help="skip the one-layer-quantized runs (one model build per layer)")
    parser.add_argument("--reference", help="tflite: the float model (default: the sibling tflite-fp32 "
                        "artifact, else converted from the manifest's source)")
    parser.add_argument("--json", action="store_true", help="print the whole diagnosis as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgex.commands.console import reporter_for, stdout_reserved
    from edgex.diagnose.report import render
    from edgex.diagnose.run import diagnose, int8_manifest
    from edgex.errors import UsageError

    if args.samples < 1 or args.top < 1:
        raise UsageError("--samples and --top must be at least 1")
    int8_manifest(Path(args.artifact))  # fail before any output when it is no int8 artifact
    with stdout_reserved(silence_native=not args.debug) as stdout:
        reporter = reporter_for(args, stdout)
        reporter.info(f"diagnosing {args.artifact} on {args.samples} images from {args.calib_data}")
        with reporter.task("diagnosing layers", None) as advance:
            result = diagnose(Path(args.artifact), Path(args.calib_data), samples=args.samples,
                              isolated=not args.no_isolated, seed=args.seed,
                              reference=Path(args.reference) if args.reference else None, progress=advance)
        if args.json:
            print(json.dumps(result, indent=2), file=stdout)
        else:
            print(render(result, args.top), file=stdout)
    return 0
