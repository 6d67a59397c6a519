"""The `edgex` command line: thin commands over the API. Heavy frameworks load only inside commands."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from edgex import __version__
from edgex.errors import EXIT_CODES_HELP, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, EdgexError

TARGET_CHOICES = ("onnx", "openvino", "tflite", "all")


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
    for action in parser._actions:  # noqa: SLF001 (argparse exposes no public listing)
        flags += action.option_strings
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                flags += _all_flags(sub)
    return flags


def _floats3(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.replace(" ", "").split(",")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("give one number or three, comma-separated")
    return tuple(parts)  # type: ignore[return-value]


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError("use N or HxW, e.g. 299 or 299x299") from exc
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise argparse.ArgumentTypeError("use N or HxW, e.g. 299 or 299x299")
    return values[0], values[1]


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

    convert = commands.add_parser(
        "convert",
        help="convert a Keras model to ONNX, OpenVINO IR and TFLite, each checked against the source",
        description="Convert a Keras Xception (default: the embedded kitchenware model) to verified artifacts "
        "under OUTPUT/<model>/<target>-<precision>/, each with a manifest.json.",
        epilog="example:\n  edgex convert --model m.keras --target tflite --int8 --calib-data images/\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = convert.add_argument_group("source")
    src.add_argument("--model", help=".keras file, SavedModel folder, or .h5 (needs --trust-model); "
                     "default: the embedded kitchenware Xception")
    src.add_argument("--trust-model", action="store_true",
                     help="allow model formats that can run code (.h5, Keras Lambda layers)")
    src.add_argument("--classes", help="JSON file with the class names in output order "
                     "(default: MODEL.classes.json beside the model)")
    tgt = convert.add_argument_group("target")
    tgt.add_argument("--target", default="all", help=f"one of {', '.join(TARGET_CHOICES)} (default: all)")
    prec = tgt.add_mutually_exclusive_group()
    prec.add_argument("--int8", action="store_true", help="full-integer post-training quantization")
    prec.add_argument("--fp16", action="store_true", help="fp16 weights (openvino, tflite)")
    prec.add_argument("--dynamic", action="store_true", help="dynamic-range int8 weights (tflite)")
    tgt.add_argument("--float-io", action="store_true", help="tflite int8: keep float input and output")
    tgt.add_argument("--output", default="edgex-out", help="output folder (default: ./edgex-out)")
    cal = convert.add_argument_group("calibration")
    cal.add_argument("--calib-data", help="folder of images, searched recursively "
                     "(default for the embedded model: its 18 photos)")
    cal.add_argument("--calib-size", type=int, default=300, help="images drawn for calibration (default 300)")
    cal.add_argument("--calib-method", default="mean_minmax", choices=("mean_minmax", "minmax"),
                     help="activation range estimator: mean of per-image min/max (robust, default) "
                     "or global min/max")
    cal.add_argument("--seed", type=int, default=0, help="seed of the calibration subset (default 0)")
    pre = convert.add_argument_group("preprocessing (inferred from the model; override here)")
    pre.add_argument("--interpolation", choices=("nearest", "bilinear", "bicubic"),
                     help="resize filter (default bilinear)")
    pre.add_argument("--input-size", type=_size, help="N or HxW (default: the model's input size)")
    pre.add_argument("--crop-fraction", type=float, help="center-crop this fraction before resizing")
    pre.add_argument("--mean", type=_floats3, help="subtracted per channel (Xception: 127.5)")
    pre.add_argument("--std", type=_floats3, help="divided per channel (Xception: 127.5)")
    pre.add_argument("--layout", choices=("NHWC", "NCHW"), help="tensor layout (default: the model's)")
    gate = convert.add_argument_group("parity gate (exit 3 when missed)")
    gate.add_argument("--parity-data", help="images to check artifacts on (default: calibration images "
                      "held back from calibration)")
    gate.add_argument("--min-agreement", type=float, help="top-1 agreement with the source "
                      "(default 0.99 fp32, 0.95 fp16, 0.9 int8/dynamic)")
    gate.add_argument("--min-cosine", type=float, help="mean logit cosine similarity "
                      "(default 0.9999 fp32, 0.999 fp16, 0.98 dynamic, 0.95 int8)")
    out = convert.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress or status lines")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


@contextlib.contextmanager
def _stdout_reserved() -> Iterator[TextIO]:
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


def _cmd_convert(args: argparse.Namespace) -> int:
    from edgex.progress import Reporter, RichReporter

    classes = None
    if args.classes:
        from pathlib import Path

        from edgex.errors import DataError, MissingInputError

        path = Path(args.classes)
        if not path.is_file():
            raise MissingInputError(f"class list {path} does not exist")
        try:
            classes = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"class list {path} is not valid JSON: {exc}") from exc
    reporter = Reporter() if args.quiet else RichReporter()
    with _stdout_reserved() as stdout:
        return _convert_and_print(args, classes, reporter, stdout)


def _convert_and_print(args: argparse.Namespace, classes, reporter, stdout: TextIO) -> int:
    from edgex.api import convert
    from edgex.errors import GateError

    try:
        results = convert(
            args.model, args.target, int8=args.int8, fp16=args.fp16, dynamic=args.dynamic,
            calib_data=args.calib_data, parity_data=args.parity_data, calib_size=args.calib_size,
            calib_method=args.calib_method,
            seed=args.seed, output=args.output, interpolation=args.interpolation, input_size=args.input_size,
            crop_fraction=args.crop_fraction, mean=args.mean, std=args.std, layout=args.layout,
            float_io=args.float_io, trust_model=args.trust_model, min_agreement=args.min_agreement,
            min_cosine=args.min_cosine, classes=classes, reporter=reporter,
        )
    except GateError as error:
        if args.json:
            print(json.dumps({"ok": False, "results": getattr(error, "results", [])}, indent=2), file=stdout)
        raise
    if args.json:
        print(json.dumps({"ok": True, "results": results}, indent=2), file=stdout)
    elif not args.quiet:
        for result in results:
            print(f"{result['target']}-{result['precision']}: {result['path']}", file=stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return {"convert": _cmd_convert}[args.command](args)
    except EdgexError as error:
        if debug:
            raise
        sys.stderr.write(f"edgex: error: {error.one_line()}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("edgex: interrupted; nothing partial was left in the output\n")
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 (the last line of defence: one line, exit 1)
        if debug:
            raise
        sys.stderr.write(f"edgex: internal error: {type(error).__name__}: {error}. "
                         "Rerun with --debug for the traceback and report it.\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
