"""report.md: one table, artifacts as rows; and the side-by-side comparison of two reports."""

from __future__ import annotations

from edgex.report.tables import (
    COLUMNS,
    floor_line,
    machine_line,
    reference_cells,
    result_cells,
    settings_line,
    threads_cell,
)


def _table(header: list[str], rows: list[list[str]]) -> str:
    escape = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in escape])


def render_markdown(report: dict) -> str:
    rows = [reference_cells(ref) for ref in report.get("references", [])]
    rows += [result_cells(r) for r in report["results"]]
    data = report.get("eval_data")
    lines = [
        "# edgex benchmark report",
        "",
        f"- machine: {machine_line(report)}",
        f"- timing: {settings_line(report)}",
        *([f"- {floor_line(report)}"] if floor_line(report) else []),
        f"- accuracy: {data['count']} images, {len(data['classes'])} classes from {data['path']}"
        + (f" (class names from {data['classes_from']})" if data.get("classes_from") else "") if data
        else "- accuracy: not measured (pass --eval-data)",
        *[f"- no FP32 comparison for {r['name']}: {r['vs_source_note']}" for r in report.get("results", [])
          if r.get("vs_source_note")],
        f"- created {report.get('created')} by edgex {report.get('edgex_version')}",
        "",
        _table(list(COLUMNS), rows),
        "",
        "★ on the Pareto front (no other artifact is both faster at p50 and more accurate). Δ top-1 is the change "
        "against the FP32 source on the same images with a paired bootstrap 95% interval; \"(noise)\" when the "
        "interval contains 0.",
        "",
    ]
    return "\n".join(lines)


def compare_markdown(a: dict, b: dict, label_a: str = "A", label_b: str = "B") -> str:
    """Two runs side by side (laptop vs Pi, before vs after), matched by artifact name."""
    by_name_b = {r["name"]: r for r in b["results"]}
    names = [r["name"] for r in a["results"]] + [n for n in by_name_b if n not in {r["name"] for r in a["results"]}]
    by_name_a = {r["name"]: r for r in a["results"]}
    header = ["artifact", f"top-1 {label_a}", f"top-1 {label_b}", f"p50 ms {label_a}", f"p50 ms {label_b}",
              f"p90 ms {label_a}", f"p90 ms {label_b}", f"threads {label_a}", f"threads {label_b}",
              f"{label_b}/{label_a} p50", "size MB"]
    rows = []
    for name in names:
        ra, rb = by_name_a.get(name, {}), by_name_b.get(name, {})
        pa, pb = _get(ra, "latency_ms", "p50"), _get(rb, "latency_ms", "p50")
        size = ra.get("size_bytes") or rb.get("size_bytes")
        rows.append([name, _fmt(_get(ra, "accuracy", "top1"), 4, ra), _fmt(_get(rb, "accuracy", "top1"), 4, rb),
                     _fmt(pa, 1, ra), _fmt(pb, 1, rb), _fmt(_get(ra, "latency_ms", "p90"), 1, ra),
                     _fmt(_get(rb, "latency_ms", "p90"), 1, rb), threads_cell(ra) if ra else "absent",
                     threads_cell(rb) if rb else "absent", f"{pb / pa:.2f}x" if pa and pb else "–",
                     f"{size / 1e6:.1f}" if size else "–"])
    return "\n".join([
        f"# edgex report comparison: {label_a} vs {label_b}", "",
        f"- {label_a}: {machine_line(a)}; {settings_line(a)}",
        f"- {label_b}: {machine_line(b)}; {settings_line(b)}", "",
        _table(header, rows), "",
    ])


def _get(row: dict, section: str, key: str):
    return (row.get(section) or {}).get(key)


def _fmt(value, digits: int, row: dict) -> str:
    if not row:
        return "absent"
    if row.get("status") != "ok":
        return "failed"
    return "–" if value is None else f"{value:.{digits}f}"
