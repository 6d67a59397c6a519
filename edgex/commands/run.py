"""`edgex run pipeline.yaml`: convert, benchmark, evaluate and report a whole matrix from one config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgex.errors import EXIT_CODES_HELP

EXAMPLE = """example pipeline.yaml (relative paths are relative to this file):
  model: ../build/clothing_xception.keras
  preprocess: {interpolation: nearest}
  calibration: {data: ../../shared/datasets/clothing-small/validation, size: 300}
  targets: [onnx, openvino, tflite]
  precisions: [fp32, int8]
  evaluation: {data: ../../shared/datasets/clothing-small/test}
  bench: {threads: 2, min_runs: 50, min_seconds: 10}
  output: ../build/pipeline-clothing
  compare: {baseline: ../baseline/report.json, fail_on: [top1-drop>0.5pp, p50>+10%]}   (optional last step)
"""


def add_parser(commands) -> None:
    run_parser = commands.add_parser(
        "run", help="convert, bench, evaluate and report a whole matrix from one YAML config",
        description="Read a pipeline config (strictly validated: unknown keys are errors with a suggestion), "
        "convert every target x precision, benchmark and evaluate the artifacts, write report.json/md/html.",
        epilog=EXAMPLE + "\n" + EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_parser.add_argument("config", type=Path, help="pipeline YAML file")
    run_parser.add_argument("--dry-run", action="store_true", help="print the resolved plan and stop")
    run_parser.add_argument("--reuse", action="store_true", help="keep artifacts that already exist (no reconvert)")
    run_parser.add_argument("-q", "--quiet", action="store_true", help="no progress or status lines")
    run_parser.add_argument("--debug", action="store_true", help="show tracebacks")
    run_parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edgex.run.config import plan_from_config

    plan = plan_from_config(args.config)
    if args.dry_run:
        print(json.dumps(plan.describe(), indent=2))
        return 0
    from edgex.commands.console import reporter_for, stdout_reserved
    from edgex.errors import EXIT_SOME_FAILED
    from edgex.report.markdown import render_markdown
    from edgex.run.execute import compare_step, run_pipeline

    with stdout_reserved(silence_native=not args.debug) as stdout:
        reporter = reporter_for(args, stdout)
        report = run_pipeline(plan, reporter, reuse=args.reuse)
        if not args.quiet:
            print(render_markdown(report), file=stdout)
            print(f"reports in {plan.report}", file=stdout)
        compared = compare_step(plan, report)
        if compared is not None and not args.quiet:
            from edgex.compare.render import render_markdown as compare_markdown

            print(compare_markdown(compared), file=stdout)
    if compared is not None and compared["fired"]:
        from edgex.errors import EXIT_GATE

        return EXIT_GATE
    return EXIT_SOME_FAILED if any(r["status"] != "ok" for r in report["results"]) else 0
