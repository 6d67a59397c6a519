"""`edgex bench`: latency (and with --eval-data, accuracy) of every artifact, each in a clean child process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

from edgex.commands.console import reporter_for, stdout_reserved
from edgex.errors import EXIT_CODES_HELP, EXIT_SOME_FAILED
from edgex.options import BENCH, BenchSettings
from edgex.remote.cli import add_remote_arguments, check_remote_arguments
from edgex.scale.cli import add_fleet_arguments, add_ray_arguments, check_scale_arguments, wants_ray

THREADS_HELP = ("intra-op threads (default: every usable core of the machine that runs the artifact: with "
                "--remote, the device's, from its probe)")


def add_artifacts_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", nargs="+", type=Path, metavar="ARTIFACT_OR_DIR",
                        help="artifact folders (with manifest.json), folders of them, or model files")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)


def add_accuracy_options(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_argument_group("accuracy")
    group.add_argument("--eval-data", required=required, type=Path,
                       help="labelled images: a folder per class, or a CSV of path,label (paths relative to it)")
    group.add_argument("--source", type=Path, help="FP32 source model to compare against "
                       "(default: the one the manifest names, when present and unchanged)")
    group.add_argument("--no-source", action="store_true", help="skip the FP32 source (no agreement or drop CI)")
    group.add_argument("--trust-model", action="store_true", help="load the FP32 source even in a format that can "
                       "run code (.pt2, .h5, SavedModel, Keras Lambda); only for sources you trust")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--output", type=Path, help="folder for report.json, report.md, report.html")
    group.add_argument("--json", action="store_true", help="print report.json on stdout")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress or status lines")
    group.add_argument("--debug", action="store_true", help="show tracebacks")


def add_baseline_options(parser: argparse.ArgumentParser) -> None:
    """--baseline/--fail-on (edgex compare on this run's report) and --history (append the run's summary)."""
    from edgex.commands.compare import add_fail_on_argument

    group = parser.add_argument_group("regression gate")
    group.add_argument("--baseline", type=Path, metavar="OLD", help="a stored report folder or report.json: compare "
                       "this run against it (edgex compare; compare.* beside report.json with --output)")
    add_fail_on_argument(group)
    group.add_argument("--history", type=Path, metavar="FILE.jsonl", help="append this run's summary (time, model "
                       "commit, versions, device, rows) to a JSON Lines file; edgex report --history draws it")


def add_parser(commands) -> None:
    bench = commands.add_parser(
        "bench", help="latency, memory and accuracy of artifacts, with reports",
        description="Time each artifact in its real runtime (a clean child process each): load time, first "
        "inference, then warm-up and timed runs until both --min-runs and --min-seconds are reached. With "
        "--eval-data, also top-1/top-5, per-class accuracy and agreement with the FP32 source.",
        epilog="examples:\n  edgex bench edgex-out/clothing_xception --eval-data test/ --output report/\n"
        "  edgex bench edgex-out/clothing_xception --streams 2 --floor   (images/s, x this machine's floor)\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_artifacts_argument(bench)
    timing = bench.add_argument_group("timing")
    timing.add_argument("--min-runs", type=int, default=BENCH.min_runs,
                        help="timed runs at least (default %(default)s)")
    timing.add_argument("--min-seconds", type=float, default=BENCH.min_seconds,
                        help="seconds of timed runs at least (default %(default)s)")
    timing.add_argument("--warmup", type=int, default=BENCH.warmup, help="untimed runs first (default %(default)s)")
    timing.add_argument("--batch", type=int, default=BENCH.batch,
                        help="images per run; throughput is reported (default %(default)s)")
    timing.add_argument("--streams", type=int, default=BENCH.streams,
                        help="also measure images/s with N requests in flight (OpenVINO THROUGHPUT streams, "
                        "N ONNX Runtime/LiteRT sessions sharing the threads) beside batch-1 latency "
                        "(default %(default)s: latency only)")
    timing.add_argument("--floor", action="store_true",
                        help="also measure this machine's floor (Xception-shaped convolutions in f32 and int8) "
                        "and show each artifact's p50 over its MACs at that rate (local runs only)")
    timing.add_argument("--device", choices=("cpu", "gpu"), default=BENCH.device,
                        help="gpu: CUDA/TensorRT providers for onnxruntime, GPU plugin for OpenVINO")
    timing.add_argument("--timeout", type=float, default=BENCH.timeout_s, help="seconds per artifact before it "
                        "is recorded as failed (default %(default)s)")
    add_accuracy_options(bench, required=False)
    add_output_options(bench)
    add_baseline_options(bench)
    add_remote_arguments(bench)  # --remote USER@HOST[:PORT] and its SSH options (edgex.remote)
    add_fleet_arguments(bench)  # --remote-hosts hosts.yaml (edgex.scale.fleet)
    add_ray_arguments(bench)  # --ray, --ray-address (edgex.scale.ray_eval)
    bench.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _check_positive(args)
    _check_floor(args)
    _check_gate(args)
    check_remote_arguments(args)
    check_scale_arguments(args)
    settings = BenchSettings(threads=args.threads, min_runs=args.min_runs, min_seconds=args.min_seconds,
                             warmup=args.warmup, batch=args.batch, streams=args.streams, floor=args.floor,
                             device=args.device, timeout_s=args.timeout)
    settings.check()
    return run_and_report(args, settings)


def _check_positive(args: argparse.Namespace) -> None:
    from edgex.errors import UsageError

    for name in ("threads", "min_runs", "batch", "streams"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if args.min_seconds < 0 or args.warmup < 0:
        raise UsageError("--min-seconds and --warmup must not be negative")


def _check_gate(args: argparse.Namespace) -> None:
    """Rules and the baseline are checked before any artifact is timed: a typo costs no benchmark."""
    from edgex.compare.rules import parse_rules
    from edgex.errors import UsageError

    rules = parse_rules(args.fail_on)
    if rules and not args.baseline:
        raise UsageError("--fail-on needs a --baseline to compare against", "Add --baseline OLD/report.json.")
    if args.baseline:
        from edgex.compare.pairing import load_side

        load_side(args.baseline)


def _check_floor(args: argparse.Namespace) -> None:
    """--floor times this machine: refused where the artifacts run on others."""
    from edgex.errors import UsageError

    elsewhere = [flag for flag, on in (("--remote", getattr(args, "remote", None)),
                                       ("--remote-hosts", getattr(args, "remote_hosts", None)),
                                       ("--ray", getattr(args, "ray", False) or getattr(args, "ray_address", None)))
                 if on]
    if args.floor and elsewhere:
        raise UsageError(f"--floor measures this machine, but {elsewhere[0]} times the artifacts elsewhere",
                         "Drop --floor, or run edgex bench --floor on the machine that runs the artifacts.")


def run_and_report(args: argparse.Namespace, settings) -> int:
    """Shared by bench and eval: measure, write the reports, print the table (or JSON)."""
    from edgex.bench.suite import run_suite

    with stdout_reserved(silence_native=not args.debug) as stdout:
        reporter = reporter_for(args, stdout)
        if getattr(args, "remote", None):  # the same suite, each runner call made on the device over SSH
            from edgex.remote.bench import run_remote_suite

            report = run_remote_suite(args, settings, reporter)
        elif getattr(args, "remote_hosts", None):  # every device of hosts.yaml in parallel, one merged report
            from edgex.scale.fleet import run_fleet

            report = run_fleet(args, settings, reporter)
        elif wants_ray(args) or getattr(args, "skip_bad_images", False):
            from edgex.scale.suite import run_scaled_suite

            report = run_scaled_suite(args, settings, reporter)
        else:
            report = run_suite(args.artifacts, settings, args.eval_data, args.source, not args.no_source, reporter,
                               trust_source=args.trust_model)
        return _emit(args, report, reporter, stdout)


def _emit(args: argparse.Namespace, report: dict, reporter, stdout: TextIO) -> int:
    from edgex.report.markdown import render_markdown
    from edgex.report.write import write_reports

    if args.output:
        paths = write_reports(report, args.output)
        reporter.info(f"wrote {paths['json']}, {paths['md'].name}, {paths['html'].name}")
    if args.json:
        print(json.dumps(report, indent=2, default=str), file=stdout)
    elif not args.quiet:
        print(render_markdown(report), file=stdout)
    gate = _gate(args, report, reporter, stdout)
    failed = [r for r in report["results"] if r["status"] != "ok"]
    return gate or (EXIT_SOME_FAILED if failed else 0)


def _gate(args: argparse.Namespace, report: dict, reporter, stdout: TextIO) -> int:
    """--history appends the run; --baseline compares it (exit 3 when a --fail-on rule fires, else 0)."""
    if getattr(args, "history", None):
        from edgex.report.history import append_history

        append_history(report, args.history)
        reporter.info(f"appended this run to {args.history}")
    if not getattr(args, "baseline", None):
        return 0
    from edgex.commands.compare import emit
    from edgex.compare.gate import compare_reports
    from edgex.compare.pairing import load_side
    from edgex.compare.rules import parse_rules

    baseline, baseline_file = load_side(args.baseline)
    new_file = args.output / "report.json" if args.output else None
    result = compare_reports(baseline, report, parse_rules(args.fail_on), baseline_path=baseline_file,
                             new_path=new_file)
    return emit(result, args.output, quiet=args.quiet or args.json, stdout=stdout)
