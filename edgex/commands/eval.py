"""`edgex eval`: accuracy of artifacts on labelled images, with their own preprocessing and class names."""

from __future__ import annotations

import argparse

from edgex.commands.bench import add_accuracy_options, add_artifacts_argument, add_output_options
from edgex.errors import EXIT_CODES_HELP
from edgex.options import BENCH
from edgex.remote.cli import add_remote_arguments, check_remote_arguments
from edgex.scale.cli import add_ray_arguments, check_scale_arguments


def add_parser(commands) -> None:
    ev = commands.add_parser(
        "eval", help="accuracy of artifacts on labelled images (top-1/5, per class, vs the FP32 source)",
        description="Evaluate artifacts in their real runtimes (a clean child process each) with the "
        "preprocessing and class names from their manifests: top-1, top-5 (more than 5 classes), per-class "
        "accuracy, confusion matrix, agreement with the FP32 source and the bootstrap 95% interval of the "
        "top-1 drop.",
        epilog="example:\n  edgex eval edgex-out/m/tflite-int8 --eval-data test/\n"
        "  edgex eval edgex-out/m/tflite-int8 --eval-data test/ --remote pi@raspberrypi.local\n"
        "  edgex eval edgex-out/m --eval-data imagenet-val/ --ray-address 10.0.0.5:6379\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_artifacts_argument(ev)
    ev.add_argument("--batch", type=int, default=BENCH.batch, help="images per inference (default %(default)s)")
    add_accuracy_options(ev, required=True)
    add_output_options(ev)
    add_remote_arguments(ev, device=False)  # the runner evaluates on the device; logits come back
    add_ray_arguments(ev)  # --ray / --ray-address: shards over a Ray cluster (edgex.scale.ray_eval)
    ev.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edgex.commands.bench import run_and_report
    from edgex.options import BenchSettings

    check_remote_arguments(args)
    check_scale_arguments(args)
    settings = BenchSettings(threads=args.threads, batch=args.batch, latency=False)
    settings.check()
    return run_and_report(args, settings)
