"""Inline SVG charts (no JavaScript, no network): accuracy-vs-latency scatter with the Pareto front, size bars."""

from __future__ import annotations

import math
from html import escape

TARGET_COLOURS = {"onnx": "#1f77b4", "openvino": "#7b3fb5", "tflite": "#e6740b", "keras": "#2ca02c",
                  "torch": "#2ca02c", "saved_model": "#2ca02c"}
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 440, 70, 150, 20, 50


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= step * m)
    start = math.floor(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 2) if start + i * step <= high + step / 2]


def scatter(results: list[dict], references: list[dict]) -> str:
    """top-1 (%) against p50 latency (ms); whiskers reach p90; the Pareto front is a dashed staircase."""
    points = [r for r in results if r.get("status") == "ok" and r.get("latency_ms") and r.get("accuracy")]
    if not points:
        return '<p class="note">No artifact has both latency and accuracy: run edgex bench with --eval-data.</p>'
    ref_acc = [ref["accuracy"]["top1"] * 100 for ref in references if ref.get("accuracy")]
    accs = [p["accuracy"]["top1"] * 100 for p in points] + ref_acc
    x_ticks = nice_ticks(0, max(p["latency_ms"]["p90"] for p in points) * 1.05)
    y_ticks = nice_ticks(min(accs) - 1.0, max(accs) + 1.0, 5)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(v: float) -> float:
        return LEFT + (v - x0) / (x1 - x0) * plot_w

    def sy(v: float) -> float:
        return TOP + plot_h - (v - y0) / (y1 - y0) * plot_h

    out = [f'<svg id="scatter" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="top-1 accuracy against p50 latency">',
           f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>']
    for t in x_ticks:
        out.append(f'<line x1="{sx(t):.1f}" y1="{TOP}" x2="{sx(t):.1f}" y2="{TOP + plot_h}" stroke="#e3e3e3"/>'
                   f'<text x="{sx(t):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="11">{t:g}</text>')
    for t in y_ticks:
        out.append(f'<line x1="{LEFT}" y1="{sy(t):.1f}" x2="{LEFT + plot_w}" y2="{sy(t):.1f}" stroke="#e3e3e3"/>'
                   f'<text x="{LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="11">{t:g}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle" font-size="12">'
               'latency p50 (ms, batch 1); whisker to p90</text>'
               f'<text transform="translate(16,{TOP + plot_h / 2}) rotate(-90)" text-anchor="middle" '
               'font-size="12">top-1 accuracy (%)</text>')
    for acc in ref_acc:
        out.append(f'<line x1="{LEFT}" y1="{sy(acc):.1f}" x2="{LEFT + plot_w}" y2="{sy(acc):.1f}" stroke="#2ca02c" '
                   f'stroke-dasharray="2,3"/><text x="{LEFT + plot_w + 4}" y="{sy(acc) + 4:.1f}" font-size="11" '
                   f'fill="#2ca02c">FP32 source {acc:.2f}%</text>')
    front = sorted((p for p in points if p.get("pareto")), key=lambda p: p["latency_ms"]["p50"])
    if front:
        coords = [(sx(p["latency_ms"]["p50"]), sy(p["accuracy"]["top1"] * 100)) for p in front]
        path = f"M{coords[0][0]:.1f},{coords[0][1]:.1f}" + "".join(f" H{x:.1f} V{y:.1f}" for x, y in coords[1:])
        out.append(f'<path class="pareto" d="{path}" fill="none" stroke="#d62728" stroke-width="2" '
                   'stroke-dasharray="6,4"/>')
    placed: list[tuple[float, float, float]] = []  # label boxes (x0, x1, baseline) already drawn
    for p in sorted(points, key=lambda p: p["latency_ms"]["p50"]):
        x, y = sx(p["latency_ms"]["p50"]), sy(p["accuracy"]["top1"] * 100)
        colour = TARGET_COLOURS.get(p["target"], "#444")
        fill = colour if p.get("precision") == "int8" else "white"
        out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{sx(p["latency_ms"]["p90"]):.1f}" y2="{y:.1f}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        if p.get("pareto"):
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="11" fill="none" stroke="#d62728" stroke-width="2"/>')
        out.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{fill}" stroke="{colour}" '
                   f'stroke-width="3"><title>{escape(p["name"])}: p50 {p["latency_ms"]["p50"]:.1f} ms, '
                   f'top-1 {p["accuracy"]["top1"] * 100:.2f}%</title></circle>'
                   f'<text x="{x + 10:.1f}" y="{_label_y(placed, x + 10, y, p["name"]):.1f}" '
                   f'font-size="11">{escape(p["name"])}</text>')
    legend_y = TOP + 10
    for target, colour in TARGET_COLOURS.items():
        if any(p["target"] == target for p in points):
            out.append(f'<circle cx="{WIDTH - RIGHT + 20}" cy="{legend_y}" r="6" fill="{colour}"/>'
                       f'<text x="{WIDTH - RIGHT + 32}" y="{legend_y + 4}" font-size="11">{target}</text>')
            legend_y += 18
    out.append(f'<text x="{WIDTH - RIGHT + 12}" y="{legend_y + 6}" font-size="10">filled: int8, hollow: float</text>'
               f'<line x1="{WIDTH - RIGHT + 12}" y1="{legend_y + 22}" x2="{WIDTH - RIGHT + 40}" y2="{legend_y + 22}" '
               f'stroke="#d62728" stroke-width="2" stroke-dasharray="6,4"/>'
               f'<text x="{WIDTH - RIGHT + 44}" y="{legend_y + 26}" font-size="10">Pareto front</text></svg>')
    return "\n".join(out)


def _label_y(placed: list[tuple[float, float, float]], x: float, y: float, text: str) -> float:
    """A baseline near the point whose label box overlaps no label drawn before (tries above, then below)."""
    width = 6.5 * len(text)
    for offset in (-9, 19, -23, 33, -37, 47, -51, 61):
        baseline = y + offset
        if not any(x < x1 and x + width > x0 and abs(baseline - b) < 13 for x0, x1, b in placed):
            break
    placed.append((x, x + width, baseline))
    return baseline


def size_bars(results: list[dict]) -> str:
    """One horizontal bar per artifact: size on disk (MB)."""
    rows = [r for r in results if r.get("size_bytes")]
    return _bars(rows, "sizes", "size on disk", lambda r: r["size_bytes"], lambda r: f"{r['size_bytes'] / 1e6:.1f} MB")


def throughput_bars(results: list[dict]) -> str:
    """One bar per artifact: images/s with --streams requests in flight (else one request at --batch),
    labelled with the one-request figure beside it, so throughput and latency read together."""
    rows = [r for r in results if r.get("status") == "ok" and (r.get("throughput_ips") or _streams_ips(r))]
    return _bars(rows, "throughput", "images per second", lambda r: _streams_ips(r) or r["throughput_ips"],
                 _throughput_text)


def _streams_ips(row: dict) -> float | None:
    return (row.get("streams") or {}).get("throughput_ips")


def _throughput_text(row: dict) -> str:
    one = f"{row['throughput_ips']:.1f}/s with 1 request at batch {row.get('batch') or 1}"
    streams = row.get("streams")
    return f"{streams['throughput_ips']:.1f}/s with {streams['streams']} streams ({one})" if streams else one


def _bars(rows: list[dict], svg_id: str, label: str, value, text) -> str:
    """One horizontal bar per row, scaled to the largest value, coloured by target (int8 solid)."""
    if not rows:
        return ""
    bar_h, gap, left, width = 18, 6, 150, 560
    biggest = max(value(r) for r in rows)
    height = len(rows) * (bar_h + gap) + 10
    out = [f'<svg id="{svg_id}" xmlns="http://www.w3.org/2000/svg" width="{left + width + 320}" height="{height}" '
           f'role="img" aria-label="{label}">']
    for i, r in enumerate(rows):
        y = 5 + i * (bar_h + gap)
        w = max(1.0, value(r) / biggest * width)
        colour = TARGET_COLOURS.get(r["target"], "#444")
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="12">{escape(r["name"])}</text>'
                   f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}" '
                   f'opacity="{1.0 if r.get("precision") == "int8" else 0.45}"/>'
                   f'<text x="{left + w + 6:.1f}" y="{y + 13}" font-size="12">{escape(text(r))}</text>')
    out.append("</svg>")
    return "\n".join(out)
