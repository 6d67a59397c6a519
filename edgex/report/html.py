"""report.html: one self-contained file (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

from html import escape

from edgex.report.svg import scatter, size_bars, throughput_bars
from edgex.report.tables import COLUMNS, floor_line, machine_line, reference_cells, result_cells, settings_line

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
table { border-collapse: collapse; font-size: 13px; margin: 12px 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f0f0f0; }
td:first-child, td:nth-child(2), td:last-child, th:first-child, th:nth-child(2), th:last-child { text-align: left; }
tr.failed td { background: #fde8e8; } tr.reference td { background: #eef7ee; }
.note { color: #666; font-size: 13px; } h2 { margin-top: 28px; }
"""


def render_html(report: dict, history: list[dict] | None = None) -> str:
    """The report page; with `history` (edgex.report.history entries), also the trend of top-1 and p50."""
    from edgex.report.trend import trend_charts

    trend = f"<h2>Trend over {len(history)} runs</h2>\n{trend_charts(history)}" if history else ""
    data = report.get("eval_data")
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = []
    for ref in report.get("references", []):
        body.append('<tr class="reference">' + "".join(f"<td>{escape(c)}</td>" for c in reference_cells(ref)) + "</tr>")
    for row in report["results"]:
        css = "ok" if row["status"] == "ok" else "failed"
        body.append(f'<tr class="{css}">' + "".join(f"<td>{escape(c)}</td>" for c in result_cells(row)) + "</tr>")
    created = f"created {escape(str(report.get('created')))} by edgex {escape(str(report.get('edgex_version')))}"
    accuracy = (f"{data['count']} images, {len(data['classes'])} classes from {escape(data['path'])}" if data
                else "not measured (pass --eval-data)")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgex benchmark report</title>
<style>{_STYLE}</style></head><body>
<h1>edgex benchmark report</h1>
<p class="note">machine: {escape(machine_line(report))}<br>timing: {escape(settings_line(report))}<br>
{escape(floor_line(report)) + "<br>" if floor_line(report) else ""}
accuracy: {accuracy}<br>{created}</p>
<h2>Accuracy against latency</h2>
{scatter(report['results'], report.get('references', []))}
<h2>Artifacts</h2>
<table id="results"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<p class="note">★ on the Pareto front. Δ top-1: change against the FP32 source on the same images, paired bootstrap
95% interval; "(noise)" when it contains 0.</p>
<h2>Throughput</h2>
{throughput_bars(report['results'])}
<h2>Size on disk</h2>
{size_bars(report['results'])}
{trend}
</body></html>
"""
