"""compare.html's chart: one diverging bar per change, coloured by its verdict (inline SVG, no scripts)."""

from __future__ import annotations

from html import escape

from edgex.report.svg import nice_ticks

VERDICT_COLOURS = {"worse": "#d62728", "better": "#2ca02c", "within noise": "#9e9e9e", "no verdict": "#cccccc"}


def change_chart(changes: list[dict]) -> str:
    """Signed change of every measured metric (top-1 in percentage points, the others in %), zero in the middle."""
    rows = [c for c in changes if c["change"] is not None]
    if not rows:
        return '<p class="note">No change to draw: no row was measured in both runs.</p>'
    values = [c["change"] * (1 if c["unit"] == "pp" else 100) for c in rows]
    reach = max(nice_ticks(0, max(max(abs(v) for v in values), 1.0), 4))
    bar_h, gap, left, half, right = 16, 6, 400, 200, 170
    height = len(rows) * (bar_h + gap) + 40
    middle = left + half

    def sx(v: float) -> float:
        return middle + max(-reach, min(reach, v)) / reach * half

    out = [f'<svg id="changes" xmlns="http://www.w3.org/2000/svg" width="{left + 2 * half + right}" '
           f'height="{height}" role="img" aria-label="change of each metric, coloured by verdict">']
    for tick in (-reach, -reach / 2, 0, reach / 2, reach):
        out.append(f'<line x1="{sx(tick):.1f}" y1="4" x2="{sx(tick):.1f}" y2="{height - 30}" '
                   f'stroke="{"#666" if tick == 0 else "#e3e3e3"}"/><text x="{sx(tick):.1f}" y="{height - 16}" '
                   f'text-anchor="middle" font-size="11">{tick:+g}</text>')
    out.append(f'<text x="{middle}" y="{height - 2}" text-anchor="middle" font-size="11">change: % '
               '(top-1: percentage points); red worse, green better, grey within noise; shaded: the noise band</text>')
    for i, (change, value) in enumerate(zip(rows, values, strict=True)):
        y = 5 + i * (bar_h + gap)
        x0, x1 = sorted((sx(0), sx(value)))
        colour = VERDICT_COLOURS.get(change["verdict"], "#444")
        unit = " pp" if change["unit"] == "pp" else "%"
        label = f"{change['row']} · {change['metric']}"
        if change.get("threshold"):  # the band a change must leave to be called
            band_low, band_high = sx(-change["threshold"] * 100), sx(change["threshold"] * 100)
            out.append(f'<rect class="noise" x="{band_low:.1f}" y="{y - 2}" width="{band_high - band_low:.1f}" '
                       f'height="{bar_h + 4}" fill="#ececec"/>')
        out.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" font-size="11">{escape(label)}</text>'
                   f'<rect x="{x0:.1f}" y="{y}" width="{max(1.0, x1 - x0):.1f}" height="{bar_h}" fill="{colour}">'
                   f'<title>{escape(label)}: {value:+.2f}{unit}, {escape(change["verdict"])}</title></rect>'
                   f'<text x="{left + 2 * half + 6}" y="{y + 12}" font-size="11">{value:+.2f}{unit} '
                   f'{escape(change["verdict"])}</text>')
    out.append("</svg>")
    return "\n".join(out)
