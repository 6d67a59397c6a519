"""Compare two reports end to end: pair, judge, name the environment differences, apply the rules."""

from __future__ import annotations

from pathlib import Path

from edgex.compare.pairing import environment_differences, key_label, load_side, pair_rows
from edgex.compare.rules import Rule, fired
from edgex.compare.verdicts import WORSE, row_changes
from edgex.options import COMPARE, CompareOptions


def _side(report: dict, path: Path | str | None) -> dict:
    from edgex.report.tables import machine_line

    return {"path": str(path) if path else None, "created": report.get("created"),
            "edgex_version": report.get("edgex_version"), "machine": machine_line(report)}


def compare_reports(baseline: dict, new: dict, rules: list[Rule] | None = None,
                    options: CompareOptions = COMPARE, baseline_path: Path | str | None = None,
                    new_path: Path | str | None = None) -> dict:
    """compare.json's content: both sides, environment differences, every change and its verdict, new and gone
    rows, and the rules that fired (`gate` is "failed" when any did)."""
    rules = rules or []
    pairing = pair_rows(baseline, new)
    old_labels = (baseline.get("eval_data") or {}).get("labels") or {}
    new_labels = (new.get("eval_data") or {}).get("labels") or {}
    changes = [change for key, old_row, new_row in pairing.pairs
               for change in row_changes(key_label(key), old_row, new_row, old_labels, new_labels, options)]
    gone = [key_label(key) for key, _ in pairing.gone]
    firing = fired(rules, changes, gone)
    return {
        "schema": "edgex-compare", "schema_version": 1,
        "baseline": _side(baseline, baseline_path), "new": _side(new, new_path),
        "environment": environment_differences(baseline, new, pairing),
        "options": {"alpha": options.alpha, "min_change": options.min_change, "noise_k": options.noise_k,
                    "size_change": options.size_change},
        "changes": [c.to_dict() for c in changes],
        "new_rows": [key_label(key) for key, _ in pairing.new_only], "gone_rows": gone,
        "worse": sum(c.verdict == WORSE for c in changes),
        "rules": [r.text for r in rules], "fired": firing, "gate": "failed" if firing else "passed",
    }


def compare_paths(baseline: Path, new: Path, rules: list[Rule] | None = None,
                  options: CompareOptions = COMPARE) -> dict:
    """compare_reports on two report folders or report.json files."""
    old_report, old_file = load_side(baseline)
    new_report, new_file = load_side(new)
    return compare_reports(old_report, new_report, rules, options, old_file, new_file)
