"""Write report.json, report.md and report.html into one folder, each atomically."""

from __future__ import annotations

import os
from pathlib import Path

from edgex.artifacts.hashing import write_json
from edgex.errors import output_failure
from edgex.report.html import render_html
from edgex.report.markdown import render_markdown


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(report: dict, folder: Path, history: list[dict] | None = None) -> dict[str, Path]:
    """report.json/md/html; `history` (edgex.report.history entries) adds the trend charts to report.html."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"json": folder / "report.json", "md": folder / "report.md", "html": folder / "report.html"}
        write_json(paths["json"], report)
        write_text(paths["md"], render_markdown(report))
        write_text(paths["html"], render_html(report, history))
    except OSError as exc:  # 74 when the disk is full, 73 when the folder is not writable
        raise output_failure(exc, folder / "report.*") from exc
    return paths
