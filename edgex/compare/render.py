"""The comparison as one table: printed (Markdown), compare.md, compare.json and compare.html (with a chart)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from edgex.report.markdown import _table as markdown_table

COLUMNS = ("row", "metric", "baseline", "new", "change", "verdict", "why")
_FORMATS = {"top-1": lambda v: f"{v * 100:.2f}%", "p50": lambda v: f"{v:.2f} ms", "throughput": lambda v: f"{v:.1f}/s",
            "x floor": lambda v: f"{v:.2f}", "peak RSS": lambda v: f"{v:.0f} MB", "size": lambda v: f"{v / 1e6:.2f} MB"}


def value_cell(metric: str, value) -> str:
    if value is None:
        return "–"
    return _FORMATS[metric](value) if metric in _FORMATS and not isinstance(value, str) else str(value)


def change_cell(change: dict) -> str:
    if change["change"] is None:
        return "–"
    return f"{change['change']:+.2f} pp" if change["unit"] == "pp" else f"{change['change']:+.1%}"


def cells(change: dict) -> list[str]:
    return [change["row"], change["metric"], value_cell(change["metric"], change["baseline"]),
            value_cell(change["metric"], change["new"]), change_cell(change), change["verdict"], change["detail"]]


def _header_lines(result: dict) -> list[str]:
    lines = []
    for side in ("baseline", "new"):
        s = result[side]
        lines.append(f"- {side}: {s['path'] or '(this run)'}, created {s['created']} by edgex {s['edgex_version']} "
                     f"on {s['machine']}")
    if result["environment"]:
        lines += ["", "**Not measured alike** (changes below may come from these, not from the model):"]
        lines += [f"- {line}" for line in result["environment"]]
    for key, title in (("new_rows", "new rows (no baseline)"), ("gone_rows", "gone rows (in the baseline only)")):
        if result[key]:
            lines += ["", f"{title}: " + "; ".join(result[key])]
    return lines


def _gate_lines(result: dict) -> list[str]:
    if not result["rules"]:
        return [f"{result['worse']} change(s) worse; no --fail-on rules, so the gate cannot fail."]
    if not result["fired"]:
        return [f"gate passed: no rule fired ({', '.join(result['rules'])})."]
    return ["**gate failed**:"] + [f"- {line}" for line in result["fired"]]


def render_markdown(result: dict) -> str:
    table = markdown_table(list(COLUMNS), [cells(c) for c in result["changes"]]) if result["changes"] \
        else "No row was measured in both runs."
    return "\n".join(["# edgex compare", "", *_header_lines(result), "", table, "", *_gate_lines(result), ""])


def render_html(result: dict) -> str:
    from edgex.compare.chart import change_chart
    from edgex.report.html import _STYLE

    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "\n".join(f'<tr class="{"failed" if c["verdict"] == "worse" else "ok"}">'
                     + "".join(f"<td>{escape(cell)}</td>" for cell in cells(c)) + "</tr>" for c in result["changes"])
    notes = "<br>".join(escape(line.lstrip("- ").replace("**", "")) for line in _header_lines(result) if line)
    gate = "<br>".join(escape(line.lstrip("- ").replace("**", "")) for line in _gate_lines(result))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgex compare</title>
<style>{_STYLE}</style></head><body>
<h1>edgex compare</h1>
<p class="note">{notes}</p>
<h2>Changes</h2>
{change_chart(result["changes"])}
<h2>Table</h2>
<table id="changes"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<p class="note">{gate}</p>
</body></html>
"""


def write_compare(result: dict, folder: Path) -> dict[str, Path]:
    """compare.json, compare.md and compare.html in `folder`, each written atomically."""
    from edgex.artifacts.hashing import write_json
    from edgex.errors import output_failure
    from edgex.report.write import write_text

    folder = Path(folder)
    paths = {"json": folder / "compare.json", "md": folder / "compare.md", "html": folder / "compare.html"}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(paths["json"], result)
        write_text(paths["md"], render_markdown(result))
        write_text(paths["html"], render_html(result))
    except OSError as exc:
        raise output_failure(exc, folder / "compare.*") from exc
    return paths


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, default=str)
