"""Run history: `edgex bench --history FILE.jsonl` appends one summary line per run; `edgex report --history`
reads them back for the trend charts. JSON Lines, so a CI job appends without rewriting the file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from edgex.errors import DataError, MissingInputError, output_failure
from edgex.report.schema import row_threads


def model_commit(report: dict) -> str | None:
    """The git commit checked out where the model file lives (None outside a git work tree or without git)."""
    for row in report.get("results", []):
        path = (row.get("source") or {}).get("path")
        if path and Path(path).exists():
            try:
                done = subprocess.run(["git", "-C", str(Path(path).resolve().parent), "rev-parse", "HEAD"],
                                      capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.SubprocessError):
                return None
            return (done.stdout.strip() or None) if done.returncode == 0 else None
    return None


def history_row(row: dict) -> dict:
    """What a trend needs of one result: its identity, status, top-1, p50 and size."""
    return {"name": row.get("name"), "model": Path(row["path"]).parent.name if row.get("path") else None,
            "target": row.get("target"), "precision": row.get("precision"), "threads": row_threads(row),
            "status": row.get("status"), "top1": (row.get("accuracy") or {}).get("top1"),
            "p50_ms": (row.get("latency_ms") or {}).get("p50"), "size_bytes": row.get("size_bytes")}


def history_entry(report: dict) -> dict:
    from edgex.report.tables import machine_line

    machine = report.get("machine") or {}
    runtimes = {name: info.get("version") for name, info in (machine.get("runtimes") or {}).items()
                if isinstance(info, dict) and info.get("available")}
    return {"time": report.get("created"), "commit": model_commit(report), "edgex_version": report.get("edgex_version"),
            "versions": {**(machine.get("libraries") or {}), **{f"runtime:{k}": v for k, v in runtimes.items()}},
            "device": machine_line(report), "rows": [history_row(r) for r in report.get("results", [])]}


def append_history(report: dict, path: Path) -> dict:
    """Append the run's summary as one line (one write, then fsync: a reader never sees half a line)."""
    entry = history_entry(report)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise output_failure(exc, path, "append to") from exc
    return entry


def read_history(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"history {path} does not exist", "Write it with edgex bench --history FILE.jsonl.")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path} line {number} is not JSON: {exc}", "Each line must be one edgex bench run.") \
                from exc
        if not isinstance(entry, dict) or not isinstance(entry.get("rows"), list):
            raise DataError(f"{path} line {number} is not an edgex history entry (no \"rows\")")
        entries.append(entry)
    return entries
