"""`edgex report`: re-render a report.json, or compare two side by side (laptop vs Pi, before vs after)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgex.errors import EXIT_CODES_HELP


def add_parser(commands) -> None:
    rep = commands.add_parser(
        "report", help="render a report.json, or compare two (A.json B.json)",
        description="One report: print its table (and with --output, rewrite report.md and report.html). Two "
        "reports: a side-by-side Markdown table matched by artifact, with the p50 ratio.",
        epilog="example:\n  edgex report laptop/report.json pi/report.json --labels laptop,pi\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rep.add_argument("reports", nargs="+", type=Path, metavar="REPORT_JSON", help="one or two report.json files")
    rep.add_argument("--labels", help="names of the two runs, comma-separated (default: their folder names)")
    rep.add_argument("--output", type=Path, help="folder to write report.md/html (one report) or compare.md (two)")
    rep.add_argument("--history", type=Path, metavar="FILE.jsonl", help="one report: draw the trend of top-1 and "
                     "p50 per artifact over the runs edgex bench --history appended (in report.html; needs --output)")
    rep.add_argument("--debug", action="store_true", help="show tracebacks")
    rep.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edgex.errors import UsageError
    from edgex.report.markdown import compare_markdown, render_markdown
    from edgex.report.schema import load_report

    if len(args.reports) > 2:
        raise UsageError(f"give one or two reports, not {len(args.reports)}")
    if args.history and (len(args.reports) != 1 or not args.output):
        raise UsageError("--history draws into one report's report.html: give one report and --output")
    reports = [load_report(p) for p in args.reports]
    if len(reports) == 1:
        if args.output:
            from edgex.report.history import read_history
            from edgex.report.write import write_reports

            write_reports(reports[0], args.output, read_history(args.history) if args.history else None)
        print(render_markdown(reports[0]))
        return 0
    labels = args.labels.split(",") if args.labels else [p.resolve().parent.name or str(p) for p in args.reports]
    if len(labels) != 2 or labels[0] == labels[1]:
        labels = ["A", "B"]
    text = compare_markdown(reports[0], reports[1], labels[0], labels[1])
    if args.output:
        from edgex.report.write import write_text

        args.output.mkdir(parents=True, exist_ok=True)
        write_text(args.output / "compare.md", text)
    print(text)
    return 0
