"""The diagnosis as text: both references at the model output, the runtime configuration users run, then the
per-layer table, worst layer first. "n/c" marks a figure that is not comparable (no reference signal),
"-" one that was not measured."""

from __future__ import annotations

import math

NOT_COMPARABLE, NOT_MEASURED = "n/c", "-"


def fmt(row: dict, key: str, spec: str = ".1f") -> str:
    """A row's figure: n/c when the key is there without a value, - when it was not measured."""
    if key not in row:
        return NOT_MEASURED
    value = row[key]
    if value is None:
        return NOT_COMPARABLE
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, spec)


def _figures(part: dict | None) -> str:
    if part is None:
        return NOT_COMPARABLE
    return (f"SQNR {fmt(part, 'sqnr_db')} dB, relative error {fmt(part, 'rel_error', '.3f')}, "
            f"top-1 agreement {fmt(part, 'top1_agreement', '.3f')}")


def render(result: dict, top: int) -> str:
    refs = result.get("references", {})
    source, unquantized = refs.get("source") or {}, refs.get("unquantized") or {}
    lines = [f"{result['target']} int8 artifact {result['artifact']}",
             f"  {result['samples']} images from {result['calib_data']}", ""]
    if source.get("path"):
        ran = source.get("runtime", {})
        how = ", ".join(str(ran[k]) for k in ("runtime", "version", "precision_ran", "delegate") if ran.get(k))
        lines += [f"reference 1: the FP32 source {source['path']}",
                  f"  model output, the artifact as users run it ({how}): {_figures(source.get('output'))}",
                  f"  model output, the artifact unquantized: {_figures(source.get('unquantized_output'))}"]
    else:
        lines.append(f"reference 1: the FP32 source: not used ({source.get('note') or 'no source'})")
    lines += [f"reference 2: {unquantized.get('what') or result.get('reference')}",
              f"  model output: {_figures(result['output'])}", ""]
    if result.get("runtime_config"):
        lines += runtime_lines(result["runtime_config"], top) + [""]
    lines += _layer_lines(result, top)
    return "\n".join(lines)


def runtime_lines(section: dict, top: int) -> list[str]:
    """The configuration users run against the one the per-layer table measures, and where they part."""
    where = f"  [emulated CPU: {section['emulated_cpu']}]" if section.get("emulated_cpu") else ""
    lines = [f"runtime configuration: {section['config']}{where}", f"  model output: {_figures(section['output'])}"]
    vs = section.get("vs_source")
    if vs:
        lines[-1] += (f"; top-1 agreement with the FP32 source: optimized {fmt(vs, 'fused_agreement', '.3f')}, "
                      f"unoptimized {fmt(vs, 'unfused_agreement', '.3f')}")
    nodes = section.get("nodes") or []
    if not nodes:
        return lines
    diverging = [n for n in nodes if n.get("diverges")]
    limit = section.get("diverges_below_db")
    if diverging:
        first = next(n for n in nodes if n["node"] == section["first_parting"])
        lines.append(f"  the sessions part at {first['node']} ({first['op']}, keras layer "
                     f"{first['keras_layer'] or '?'}); {len(diverging)} of {len(nodes)} fused nodes add more "
                     f"error than {limit:g} dB SQNR allows, worst first:")
        shown = diverging[:top]
    else:
        lines.append(f"  no fused node adds error beyond {limit:g} dB SQNR: the optimized session computes what the "
                     "unoptimized one does; the worst nodes:")
        shown = nodes[: min(top, 5)]
    lines.append(f"  {'#':>3} {'fused node':<44} {'op':<16} {'keras layer':<22} {'added':>6} {'SQNR':>6} "
                 f"{'rel err':>7}")
    for i, node in enumerate(shown, 1):
        lines.append(f"  {i:>3} {_short(node['node'], 44):<44} {node['op'][:16]:<16} "
                     f"{(node['keras_layer'] or '?')[:22]:<22} {fmt(node, 'added_sqnr_db'):>6} "
                     f"{fmt(node, 'sqnr_db'):>6} {fmt(node, 'rel_error', '.3f'):>7}")
    lines.append("  added: SQNR (dB) of the error this node adds to what its inputs carried; SQNR / rel err: its "
                 "output, optimized vs unoptimized session.")
    return lines


def _layer_lines(result: dict, top: int) -> list[str]:
    lines = [f"{'#':>3} {'keras layer':<30} {'op':<16} {'iso SQNR':>8} {'iso agr':>7} {'SQNR':>6} {'rel err':>7} "
             f"{'src SQNR':>8} {'range use':>9} {'clipped':>7}  name"]
    for i, row in enumerate(result["layers"][:top], 1):
        keras = (row["keras_layer"] or "?") + (f" ({row['part']})" if row.get("part") else "")
        lines.append(
            f"{i:>3} {keras[:30]:<30} {row['op'][:16]:<16} {fmt(row, 'isolated_sqnr_db'):>8} "
            f"{fmt(row, 'isolated_agreement', '.2f'):>7} {fmt(row, 'sqnr_db'):>6} {fmt(row, 'rel_error', '.3f'):>7} "
            f"{fmt(row, 'source_sqnr_db'):>8} {fmt(row, 'range_use', '.2f'):>9} {fmt(row, 'clipped', '.4f'):>7}  "
            f"{_short(row['layer'])}")
        for fmt_name, names in sorted(row.get("trace", {}).items()):
            lines.append(f"{'':>4}{'':<30} {fmt_name}: {', '.join(_short(n) for n in names[:3])}")
    lines += ["", "iso SQNR / iso agr: model output SQNR (dB) and top-1 agreement with only this activation "
              "quantized; SQNR / rel err: this tensor, int8 vs reference 2, errors from upstream included; "
              "src SQNR: int8 vs the FP32 source's layer output (where a graph tensor is one); range use: share of "
              "the integer grid the int8 tensor spans per image (low = range stretched by outliers); clipped: "
              "share of reference values beyond the grid. n/c: not comparable (no reference signal); -: not "
              "measured."]
    return lines


def _short(name: str, keep: int = 70) -> str:
    """Fused TFLite names list every folded op; the first part is enough to find it."""
    first = name.split(";")[0]
    return first if len(first) <= keep else "..." + first[-(keep - 3):]
