"""report.html's trend: top-1 and p50 of each artifact over the runs of a history file (inline SVG lines)."""

from __future__ import annotations

from html import escape

from edgex.report.svg import TARGET_COLOURS, nice_ticks

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 260, 70, 230, 16, 46


def _series(history: list[dict], value) -> dict[str, tuple[dict, list[tuple[int, float]]]]:
    """artifact label -> (one of its rows, [(run index, value)] over the runs where it was measured)."""
    out: dict[str, tuple[dict, list[tuple[int, float]]]] = {}
    for index, entry in enumerate(history):
        for row in entry.get("rows", []):
            v = value(row)
            if row.get("status") == "ok" and v is not None:
                label = f"{row.get('model') or ''} {row.get('target')}-{row.get('precision')}".strip()
                if row.get("threads"):
                    label += f" ({row['threads']} threads)"
                out.setdefault(label, (row, []))[1].append((index, v))
    return out


def _line_chart(history: list[dict], svg_id: str, title: str, value, unit_format) -> str:
    series = _series(history, value)
    if not series:
        return f'<p class="note">No run in the history measured {escape(title)}.</p>'
    values = [v for _, points in series.values() for _, v in points]
    ticks = nice_ticks(min(values) * 0.98, max(values) * 1.02, 4)
    y0, y1 = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    last = max(len(history) - 1, 1)

    def sx(i: int) -> float:
        return LEFT + i / last * plot_w

    def sy(v: float) -> float:
        return TOP + plot_h - (v - y0) / ((y1 - y0) or 1) * plot_h

    out = [f'<svg id="{svg_id}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
           f'aria-label="{escape(title)} per run">',
           f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>']
    for t in ticks:
        out.append(f'<line x1="{LEFT}" y1="{sy(t):.1f}" x2="{LEFT + plot_w}" y2="{sy(t):.1f}" stroke="#e3e3e3"/>'
                   f'<text x="{LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="11">{t:g}</text>')
    for i, entry in enumerate(history):
        out.append(f'<text x="{sx(i):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" font-size="10">'
                   f'{escape(str(entry.get("time") or i)[:10])}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" font-size="12">'
               f'{escape(title)}, one point per run (oldest left)</text>')
    for n, (label, (row, points)) in enumerate(sorted(series.items())):
        colour = TARGET_COLOURS.get(row.get("target"), "#444")
        dash = "" if row.get("precision") == "int8" else ' stroke-dasharray="5,3"'
        path = " ".join(f"{'M' if k == 0 else 'L'}{sx(i):.1f},{sy(v):.1f}" for k, (i, v) in enumerate(points))
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        out += [f'<circle cx="{sx(i):.1f}" cy="{sy(v):.1f}" r="3.5" fill="{colour}"><title>{escape(label)}: '
                f'{unit_format(v)}</title></circle>' for i, v in points]
        out.append(f'<text x="{WIDTH - RIGHT + 10}" y="{TOP + 12 + 16 * n}" font-size="11" fill="{colour}">'
                   f'{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def trend_charts(history: list[dict]) -> str:
    """Two charts over the runs of `history` (edgex.report.history): top-1 (%) and p50 latency (ms)."""
    top1 = _line_chart(history, "trend-top1", "top-1 accuracy (%)",
                       lambda r: r["top1"] * 100 if r.get("top1") is not None else None, lambda v: f"{v:.2f}%")
    p50 = _line_chart(history, "trend-p50", "latency p50 (ms)", lambda r: r.get("p50_ms"), lambda v: f"{v:.2f} ms")
    commits = [e.get("commit") for e in history]
    note = (f'<p class="note">{len(history)} runs; model commits: '
            f'{escape(", ".join((c or "?")[:10] for c in commits))}</p>')
    return f"{note}\n{top1}\n{p50}"
