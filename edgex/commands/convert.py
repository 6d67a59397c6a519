"""`edgex convert`: a Keras or PyTorch model to verified ONNX, OpenVINO IR and TFLite artifacts."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from edgex.commands.argtypes import floats3, size
from edgex.commands.console import reporter_for, stdout_reserved
from edgex.errors import EXIT_CODES_HELP
from edgex.options import BUDGET, CALIBRATION, CONVERT_OUTPUT, DEFAULT_THRESHOLDS, RANGE_ESTIMATORS

TARGET_CHOICES = ("onnx", "openvino", "tflite", "all")


def add_parser(commands) -> None:
    convert = commands.add_parser(
        "convert",
        help="convert a Keras, PyTorch or ONNX model to ONNX, OpenVINO IR and TFLite, each checked against the source",
        description="Convert a Keras or PyTorch Xception (default: the embedded kitchenware model) to verified "
        "artifacts "
        "under OUTPUT/<model>/<target>-<precision>/, each with a manifest.json.",
        epilog="examples:\n  edgex convert --model m.keras --target tflite --int8 --calib-data images/\n"
        "  edgex convert --model m.keras --target all --int8 --calib-data images/ --timings   (time per step)\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = convert.add_argument_group("source")
    src.add_argument("--model", help=".keras, .safetensors (+ sidecar from edgex port), state_dict .pt, .onnx; "
                     "SavedModel folder, .h5 or .pt2 with --trust-model; "
                     "default: the embedded kitchenware Xception")
    src.add_argument("--trust-model", action="store_true",
                     help="allow model formats that can run code (.h5, SavedModel, Keras Lambda layers, "
                     "TorchScript, .pt2, full-module pickles); only for files from authors you trust")
    src.add_argument("--classes", help="JSON file with the class names in output order "
                     "(default: MODEL.classes.json beside the model)")
    tgt = convert.add_argument_group("target")
    tgt.add_argument("--target", default="all", help=f"one of {', '.join(TARGET_CHOICES)} (default: all)")
    prec = tgt.add_mutually_exclusive_group()
    prec.add_argument("--int8", action="store_true", help="full-integer post-training quantization")
    prec.add_argument("--fp16", action="store_true", help="fp16 weights (openvino, tflite)")
    prec.add_argument("--dynamic", action="store_true", help="dynamic-range int8 weights (tflite)")
    tgt.add_argument("--recipe", help="int8: force one quantization recipe by name, or try several (NAME,NAME: "
                     "the fastest that passes parity is published) (default: ONNX builds the recipes that could be "
                     "fastest and publishes the fastest that passes parity; the other targets keep the first that "
                     "passes; see docs/convert.md)")
    tgt.add_argument("--float-io", action="store_true", help="tflite int8: keep float input and output")
    tgt.add_argument("--output", default=CONVERT_OUTPUT, help="output folder (default: ./%(default)s)")
    cal = convert.add_argument_group("calibration")
    cal.add_argument("--calib-data", help="folder of images, searched recursively "
                     "(default for the embedded model: its 18 photos)")
    cal.add_argument("--calib-size", type=int, default=CALIBRATION.size,
                     help="images drawn for calibration (default %(default)s)")
    cal.add_argument("--calib-method", default=CALIBRATION.method, choices=RANGE_ESTIMATORS,
                     help="activation range estimator: mean of per-image min/max (robust, default) "
                     "or global min/max")
    cal.add_argument("--seed", type=int, default=CALIBRATION.seed,
                     help="seed of the calibration subset (default %(default)s)")
    cal.add_argument("--skip-bad-images", action="store_true",
                     help="skip images that cannot be decoded (counted in the summary and manifest) "
                     "instead of stopping with exit 65")
    pre = convert.add_argument_group("preprocessing (inferred from the model; override here)")
    pre.add_argument("--interpolation", choices=("nearest", "bilinear", "bicubic"),
                     help="resize filter (default bilinear)")
    pre.add_argument("--input-size", type=size, help="N or HxW (default: the model's input size)")
    pre.add_argument("--crop-fraction", type=float, help="center-crop this fraction before resizing")
    pre.add_argument("--mean", type=floats3, help="subtracted per channel (Xception: 127.5)")
    pre.add_argument("--std", type=floats3, help="divided per channel (Xception: 127.5)")
    pre.add_argument("--layout", choices=("NHWC", "NCHW"), help="tensor layout (default: the model's)")
    gate = convert.add_argument_group("parity gate (exit 3 when missed)")
    gate.add_argument("--parity-data", help="images to check artifacts on (default: calibration images "
                      "held back from calibration)")
    gate.add_argument("--min-agreement", type=float, help="top-1 agreement with the source "
                      f"(default {_per_precision('min_agreement')})")
    gate.add_argument("--min-cosine", type=float, help="mean logit cosine similarity "
                      f"(default {_per_precision('min_cosine')}); the worst-5%% cosine must also reach "
                      f"{_per_precision('min_tail_cosine')}, or this value if lower")
    acc = convert.add_argument_group("accuracy budget (int8; exit 3 when missed, best artifact kept as "
                                     "<target>-int8-budget-missed)")
    acc.add_argument("--max-accuracy-drop", type=float, metavar="PP",
                     help="allowed top-1 drop vs the float source, in percentage points, on --eval-data "
                     "(labelled: a folder per class); the most harmful layers are kept in float until met")
    acc.add_argument("--min-eval-agreement", type=float, metavar="F",
                     help="top-1 agreement floor with the float source on --eval-data (for unlabelled images)")
    acc.add_argument("--eval-data", help="held-out images to score the budget on (never the calibration images)")
    acc.add_argument("--budget-trials", type=int,
                     help=f"re-quantizations allowed per target (default {BUDGET.max_trials})")
    out = convert.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    out.add_argument("--timings", action="store_true", help="print where the time and memory went: one row "
                     "per step (shared steps, then each artifact's), seconds and peak RSS")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress or status lines")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    convert.set_defaults(run=run)


def _per_precision(name: str) -> str:
    """One parity threshold per precision, as the help shows it: '0.99 fp32, 0.95 fp16, ...'."""
    return ", ".join(f"{getattr(t, name):g} {precision}" for precision, t in DEFAULT_THRESHOLDS.items())


def run(args: argparse.Namespace) -> int:
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
    with stdout_reserved(silence_native=not args.debug) as stdout:
        reporter = reporter_for(args, stdout)
        return _convert_and_print(args, classes, reporter, stdout)


def _convert_and_print(args: argparse.Namespace, classes, reporter, stdout: TextIO) -> int:
    import time

    from edgex.api import convert
    from edgex.errors import GateError

    started = time.perf_counter()

    try:
        artifacts = convert(args.model, args.target, precision=_precision(args), calib_data=args.calib_data,
                            classes=classes, layout=args.layout, output=args.output, trust_model=args.trust_model,
                            reporter=reporter, recipe=args.recipe, float_io=args.float_io, **_grouped_options(args))
    except GateError as error:
        if args.json:
            results = [a.to_dict() for a in getattr(error, "results", [])]
            print(json.dumps({"ok": False, "results": results}, indent=2), file=stdout)
        raise
    if args.json:
        print(json.dumps({"ok": True, "results": [a.to_dict() for a in artifacts]}, indent=2), file=stdout)
    elif not args.quiet:
        for artifact in artifacts:
            print(f"{artifact.name}: {artifact.path}", file=stdout)
    if args.timings and not args.json:
        from edgex.conversion.timings import timings_table

        steps = [step for artifact in artifacts for step in artifact.timings]
        print(timings_table(steps, time.perf_counter() - started), file=stdout)
    return 0


def _precision(args: argparse.Namespace) -> str:
    """--int8 / --fp16 / --dynamic (one at most, argparse checks) as edgex.convert's precision."""
    return next((name for name in ("int8", "fp16", "dynamic") if getattr(args, name)), "fp32")


def _grouped_options(args: argparse.Namespace) -> dict:
    """The flags as edgex.convert's typed option groups (edgex.options: one default per option)."""
    from edgex.options import BudgetOptions, CalibrationOptions, ParityOptions, PreprocessOverrides

    budget = {} if args.budget_trials is None else {"max_trials": args.budget_trials}
    return {
        "calibration": CalibrationOptions(size=args.calib_size, method=args.calib_method, seed=args.seed,
                                          skip_bad_images=args.skip_bad_images),
        "preprocess": PreprocessOverrides(interpolation=args.interpolation, input_size=args.input_size,
                                          crop_fraction=args.crop_fraction, mean=args.mean, std=args.std),
        "parity": ParityOptions(data=args.parity_data, min_agreement=args.min_agreement,
                                min_cosine=args.min_cosine),
        "budget": BudgetOptions(eval_data=args.eval_data, max_accuracy_drop=args.max_accuracy_drop,
                                min_eval_agreement=args.min_eval_agreement, **budget),
    }
