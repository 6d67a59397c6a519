"""`edgex predict`: what an artifact (or a source model) says about images, one line per image."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgex.errors import EXIT_CODES_HELP


def add_parser(commands) -> None:
    predict = commands.add_parser(
        "predict", help="classify images with an artifact or source model (one line per image, CSV, JSON)",
        description="Classify images with an artifact (or its source model) in its real runtime. Preprocessing, "
        "int8 input/output scaling, class names and the output kind come from the artifact's manifest. Prints one "
        "line per image (path, then the top-k labels with probabilities: softmax over logits, as-is for softmax "
        "and sigmoid outputs); an unreadable image gets its own error line and the others continue (exit 4).",
        epilog="examples:\n  edgex predict edgex-out/m/tflite-int8 photo.jpg\n"
        "  edgex predict edgex-out/m/onnx-int8 test/ --top-k 3 --csv predictions.csv\n"
        "  edgex predict my_model.keras 'photos/**/*.jpg' --json\n\n"
        "CSV: header path,label,probability,top_k; one row per image: its path as given, the top-1 label, its\n"
        "probability, the top-k as label:prob joined by | (empty fields for an image that failed).\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("model", type=Path, metavar="ARTIFACT_OR_MODEL",
                         help="artifact folder (with manifest.json), its model file, or a source model (.keras...)")
    predict.add_argument("images", nargs="+", metavar="IMAGE|DIR|GLOB",
                         help="image files, folders (searched recursively) or quoted globs")
    predict.add_argument("--top-k", type=int, default=5, help="labels per image (default %(default)s)")
    predict.add_argument("--json", action="store_true", help="print all results as one JSON object on stdout")
    predict.add_argument("--csv", type=Path, metavar="FILE", help="also write path,label,probability,top_k rows")
    predict.add_argument("--batch", type=int, default=1, help="images per inference (default %(default)s)")
    predict.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                         help="gpu: CUDA/TensorRT providers for onnxruntime, GPU plugin for OpenVINO")
    predict.add_argument("--threads", type=int, help="runtime threads (default: every usable core)")
    predict.add_argument("--trust-model", action="store_true",
                         help="allow source formats that can run code (.h5, SavedModel, .pt2); trusted authors only")
    predict.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary on stderr")
    predict.add_argument("--debug", action="store_true", help="show tracebacks and native runtime logs")
    predict.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edgex.commands.console import stdout_reserved
    from edgex.errors import UsageError
    from edgex.predict.stream import PredictOptions, predict_files

    for name in ("top_k", "batch", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    options = PredictOptions(model=args.model, images=list(args.images), top_k=args.top_k, batch=args.batch,
                             device=args.device, threads=args.threads, trust_model=args.trust_model, json=args.json,
                             csv=args.csv, quiet=args.quiet)
    with stdout_reserved(silence_native=not args.debug) as stdout:
        return predict_files(options, stdout, stdout.edgex_stderr)
