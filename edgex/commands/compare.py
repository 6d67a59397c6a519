"""`edgex compare BASELINE NEW`: the regression gate between two reports (exit 3 when a --fail-on rule fires)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgex.errors import EXIT_CODES_HELP
from edgex.options import COMPARE

RULES_HELP = ("fail (exit 3) when a change is worse than this and not noise: top1-drop>0.5pp, p50>+10%%, "
              "size>+5%%, rss>+10%%, x-floor>+10%%, throughput<-10%%, gone; repeat or separate with commas; "
              "quote them in a shell ('>' redirects)")


def add_fail_on_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fail-on", action="append", default=[], metavar="RULE", help=RULES_HELP)


def add_parser(commands) -> None:
    cmp = commands.add_parser(
        "compare", help="regression gate: what got better or worse between two reports, noise-aware",
        description="Pair the rows of two reports (same artifact, device and threads) and give each change a "
        "verdict: better, within noise or worse. Accuracy: McNemar's exact test on the images that flipped. "
        "Latency: a change must exceed both --min-change and --noise-k times the runs' round-to-round spread. "
        "A baseline from another CPU, runtime or library version is named in the output. Writes compare.json, "
        "compare.md and compare.html.",
        epilog="examples:\n  edgex compare baseline/ report/ --fail-on 'top1-drop>0.5pp' --fail-on 'p50>+10%'\n"
        "  edgex bench edgex-out/m --eval-data test/ --output report/ --baseline baseline/ --fail-on gone\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument("baseline", type=Path, metavar="BASELINE", help="the stored report folder or report.json")
    cmp.add_argument("new", type=Path, metavar="NEW", help="the report folder or report.json to judge")
    add_fail_on_argument(cmp)
    cmp.add_argument("--alpha", type=float, default=COMPARE.alpha,
                     help="McNemar p-value under which an accuracy change is called (default %(default)s)")
    cmp.add_argument("--min-change", type=float, default=COMPARE.min_change,
                     help="smallest relative latency/throughput/memory change ever called (default %(default)s)")
    cmp.add_argument("--noise-k", type=float, default=COMPARE.noise_k,
                     help="times the combined round-to-round spread a latency change must exceed (default %(default)s)")
    cmp.add_argument("--output", type=Path, help="folder for compare.json/md/html (default: NEW's folder)")
    cmp.add_argument("--json", action="store_true", help="print compare.json on stdout")
    cmp.add_argument("-q", "--quiet", action="store_true", help="print nothing; the exit code says it")
    cmp.add_argument("--debug", action="store_true", help="show tracebacks")
    cmp.set_defaults(run=run)


def compare_options(args: argparse.Namespace):
    from dataclasses import replace

    from edgex.errors import UsageError

    if not 0 < args.alpha < 1 or args.min_change < 0 or args.noise_k < 0:
        raise UsageError("--alpha must lie between 0 and 1, --min-change and --noise-k must not be negative")
    return replace(COMPARE, alpha=args.alpha, min_change=args.min_change, noise_k=args.noise_k)


def run(args: argparse.Namespace) -> int:
    from edgex.compare.gate import compare_paths
    from edgex.compare.rules import parse_rules

    rules = parse_rules(args.fail_on)  # a bad rule is exit 2 before any report is read
    result = compare_paths(args.baseline, args.new, rules, compare_options(args))
    folder = args.output or (args.new if args.new.is_dir() else args.new.parent)
    return emit(result, folder, json_out=args.json, quiet=args.quiet)


def emit(result: dict, folder: Path | None, json_out: bool = False, quiet: bool = False, stdout=None) -> int:
    """Write compare.* into `folder` (when given), print the table or JSON; EXIT_GATE when a rule fired."""
    import sys

    from edgex.compare.render import render_markdown, to_json, write_compare
    from edgex.errors import EXIT_GATE

    stdout = stdout or sys.stdout
    if folder is not None:
        paths = write_compare(result, folder)
        result_files = f"wrote {paths['json']}, {paths['md'].name}, {paths['html'].name}"
    if json_out:
        print(to_json(result), file=stdout)
    elif not quiet:
        print(render_markdown(result), file=stdout)
        if folder is not None:
            print(result_files, file=stdout)
    return EXIT_GATE if result["fired"] else 0
