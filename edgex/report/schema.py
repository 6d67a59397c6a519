"""report.json: versioned schema, machine fingerprint, Pareto marks; loading checks the version."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

from edgex.errors import DataError, MissingInputError

SCHEMA = "edgex-report"
SCHEMA_VERSION = 1
LATENCY_FIELDS = ("load_ms", "first_inference_ms", "warmup", "latency_ms", "runs", "seconds", "batch",
                  "throughput_ips", "streams", "floor", "peak_rss_mb", "round_p50_ms")


def result_row(name: str, target: str, precision: str, **known) -> dict:
    """One result row with every key a report reader looks up, None where unknown: the one place rows are built."""
    return {"name": name, "target": target, "precision": precision, "path": None, "model_file": None,
            "size_bytes": None, "status": "ok", "error": None, "kind": None, "hint": None, "runtime": None,
            **dict.fromkeys(LATENCY_FIELDS), "accuracy": None, "vs_source": None, "source": None, **known}


def row_threads(row: dict) -> int | None:
    """The intra-op threads a result ran with: its own field, else its runtime block's (older reports)."""
    return row.get("threads") or (row.get("runtime") or {}).get("threads")


def machine_fingerprint() -> dict:
    """CPU model, cores, ISA flags, OS, memory, runtimes (from the runner's probe) and library versions."""
    from edgex.runtimes import probe
    from edgex.versions import tool_versions

    info = probe()
    info.pop("ok", None)
    info["libraries"] = tool_versions()
    return info


def pareto_names(results: list[dict]) -> set[str]:
    """Artifacts no other beats on both latency (p50, lower) and top-1 (higher)."""
    points = [(r["name"], r["latency_ms"]["p50"], r["accuracy"]["top1"]) for r in results
              if r.get("status") == "ok" and r.get("latency_ms") and r.get("accuracy")]
    front = set()
    for name, latency, top1 in points:
        dominated = any(lat <= latency and acc >= top1 and (lat < latency or acc > top1)
                        for other, lat, acc in points if other != name)
        if not dominated:
            front.add(name)
    return front


def build_report(results: list[dict], settings, eval_data: dict | None, references: list[dict]) -> dict:
    from edgex import __version__

    front = pareto_names(results)
    for row in results:
        row["pareto"] = row["name"] in front
        row["threads"] = row_threads(row)  # how it was timed, beside batch, warmup, runs and seconds
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "edgex_version": __version__,
        "command": sys.argv,
        "machine": machine_fingerprint(),
        "settings": settings.to_dict(),
        "eval_data": eval_data,
        "references": references,
        "results": results,
    }


def load_report(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"report {path} does not exist", "Pass a report.json written by edgex bench.")
    try:
        report = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable JSON report: {exc}") from exc
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise DataError(f"{path} is not an edgex report (no \"schema\": \"{SCHEMA}\")")
    if report.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path} has report schema version {report.get('schema_version')}; "
                        f"this edgex reads version {SCHEMA_VERSION}", "Re-run edgex bench with this edgex.")
    return report
