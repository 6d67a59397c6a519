"""Execute a pipeline plan: convert every target x precision, then bench and evaluate them, then report."""

from __future__ import annotations

from edgex.progress import Reporter
from edgex.run.config import PipelinePlan


def _failed_row(target: str, precision: str, exc: Exception) -> dict:
    """The report row of a conversion that failed: its edgex error, or an internal one named as such."""
    from edgex.errors import EdgexError
    from edgex.report.schema import result_row

    if isinstance(exc, EdgexError):
        kind, error, hint = "convert_failed", exc.message, exc.hint
    else:
        kind, error = "convert_crashed", f"internal error: {type(exc).__name__}: {exc}"
        hint = f"A bug in edgex: `edgex convert --target {target} --debug` shows the traceback."
    return result_row(f"{target}-{precision}", target, precision, status="failed", kind=kind, error=error, hint=hint,
                      pareto=False)


def convert_arguments(options: dict) -> dict:
    """The plan's convert options (JSON, as the YAML spells them) as edgex.convert's keyword arguments."""
    from edgex.options import CalibrationOptions, ParityOptions, PreprocessOverrides, from_yaml

    groups = {"calibration": CalibrationOptions, "preprocess": PreprocessOverrides, "parity": ParityOptions}
    return {k: from_yaml(groups[k], v) if k in groups else v for k, v in options.items()}


def run_pipeline(plan: PipelinePlan, reporter: Reporter | None = None, reuse: bool = False) -> dict:
    """The report dict (also written to plan.report). A conversion that fails becomes a failed row."""
    from edgex.api import convert
    from edgex.bench.suite import run_suite
    from edgex.options import BenchSettings, from_yaml
    from edgex.report.schema import pareto_names
    from edgex.report.write import write_reports

    reporter = reporter or Reporter()
    built, failed = [], []
    for target, precision in plan.steps():
        folder = plan.artifact_dir(target, precision)
        if reuse and (folder / "manifest.json").is_file():
            reporter.info(f"reusing {folder}")
            built.append(folder)
            continue
        try:
            convert(str(plan.model), target, precision=precision, output=plan.output, reporter=reporter,
                    **convert_arguments(plan.convert))
            built.append(folder)
        except Exception as exc:  # one target's failure, whatever it is, must not stop the others
            failed.append(_failed_row(target, precision, exc))
            reporter.info(f"[red]✗ {target}-{precision}: {failed[-1]['error']}[/red]")
    settings = from_yaml(BenchSettings, plan.bench)
    if built:
        report = run_suite(built, settings, plan.eval_data, use_source=plan.use_source, reporter=reporter)
    else:
        from edgex.report.schema import build_report

        report = build_report([], settings, None, [])
    report["results"] += failed
    front = pareto_names(report["results"])
    for row in report["results"]:
        row["pareto"] = row["name"] in front
    report["pipeline"] = plan.describe()
    write_reports(report, plan.report)
    return report


def compare_step(plan: PipelinePlan, report: dict) -> dict | None:
    """The pipeline's last step: compare its report with the stored baseline, compare.* beside report.json."""
    if not plan.compare:
        return None
    from edgex.compare.gate import compare_reports
    from edgex.compare.pairing import load_side
    from edgex.compare.render import write_compare
    from edgex.compare.rules import parse_rules
    from edgex.options import CompareOptions, from_yaml

    baseline, baseline_file = load_side(plan.compare["baseline"])
    options = from_yaml(CompareOptions, plan.compare)
    result = compare_reports(baseline, report, parse_rules(options.fail_on), options, baseline_file,
                             plan.report / "report.json")
    write_compare(result, plan.report)
    return result
