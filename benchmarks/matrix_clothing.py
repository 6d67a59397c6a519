"""The full matrix on the clothing Xception: {onnx, openvino, tflite} x {fp32, int8}, benchmarked and evaluated.

    .venv/bin/python benchmarks/matrix_clothing.py [--reconvert] [--threads 2] [--docs]

Runs the pipeline of benchmarks/clothing_pipeline.yaml (calibration on validation/, accuracy on the 372
test/ images, Keras FP32 reference 0.9086 with NEAREST resize), reusing the artifacts that
benchmarks/convert_clothing.py left in build/bench-clothing unless --reconvert. Writes
build/bench-clothing/report/report.{json,md,html} and prints the table; --docs also copies the table
into docs/clothing_report.md (numbers only, no models) and draws the README's picture,
docs/img/accuracy_latency.svg (the report's accuracy-vs-latency scatter).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, build_clothing_model, shared_dir  # noqa: E402

CONFIG = Path(__file__).with_name("clothing_pipeline.yaml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=REPO / "build")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-runs", type=int, default=50)
    ap.add_argument("--min-seconds", type=float, default=10.0)
    ap.add_argument("--reconvert", action="store_true", help="convert again even where artifacts exist")
    ap.add_argument("--docs", action="store_true",
                    help="also write docs/clothing_report.md and docs/img/accuracy_latency.svg")
    args = ap.parse_args()

    if not (shared_dir() / "datasets" / "clothing-small").is_dir():
        raise SystemExit(f"clothing data not found under {shared_dir()}: set EDGEX_SHARED")
    build_clothing_model(args.build)

    from edgex.progress import RichReporter
    from edgex.report.markdown import render_markdown
    from edgex.run.config import plan_from_config
    from edgex.run.execute import run_pipeline

    plan = plan_from_config(CONFIG)
    plan.output = args.build / "bench-clothing"
    plan.report = plan.output / "report"
    plan.bench.update(threads=args.threads, min_runs=args.min_runs, min_seconds=args.min_seconds)
    report = run_pipeline(plan, RichReporter(), reuse=not args.reconvert)
    table = render_markdown(report)
    print(table)
    print(f"reports in {plan.report}")
    if args.docs:
        (REPO / "docs").mkdir(exist_ok=True)
        (REPO / "docs" / "clothing_report.md").write_text(table)
        from edgex.report.svg import scatter

        (REPO / "docs" / "img").mkdir(exist_ok=True)
        svg = scatter(report["results"], report.get("references", []))
        (REPO / "docs" / "img" / "accuracy_latency.svg").write_text(svg + "\n")


if __name__ == "__main__":
    main()
