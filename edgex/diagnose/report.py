"""The diagnosis as a human-readable table (worst layer first) and a one-paragraph reading of it."""

from __future__ import annotations


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render(result: dict, top: int) -> str:
    out = result["output"]
    lines = [
        f"{result['target']} int8 artifact {result['artifact']}",
        f"  {result['samples']} calibration images from {result['calib_data']}; reference: {result['reference']}",
        f"  model output: SQNR {_fmt(out['sqnr_db'])} dB, relative error {_fmt(out['rel_error'], '.3f')}, "
        f"top-1 agreement {_fmt(out['top1_agreement'], '.3f')}",
        "",
        f"{'#':>3} {'keras layer':<32} {'op':<18} {'iso SQNR':>8} {'iso agr':>7} {'SQNR':>6} {'rel err':>7} "
        f"{'range use':>9}  name",
    ]
    for i, row in enumerate(result["layers"][:top], 1):
        keras = (row["keras_layer"] or "?") + (f" ({row['part']})" if row.get("part") else "")
        lines.append(
            f"{i:>3} {keras[:32]:<32} {row['op'][:18]:<18} {_fmt(row.get('isolated_sqnr_db')):>8} "
            f"{_fmt(row.get('isolated_agreement'), '.2f'):>7} {_fmt(row['sqnr_db']):>6} "
            f"{_fmt(row['rel_error'], '.3f'):>7} {_fmt(row['range_use'], '.2f'):>9}  {_short(row['layer'])}")
        for fmt, names in sorted(row.get("trace", {}).items()):
            lines.append(f"{'':>4}{'':<32} {fmt}: {', '.join(_short(n) for n in names[:3])}")
    lines += ["", "iso SQNR / iso agr: model output SQNR (dB) and top-1 agreement with only this activation "
              "quantized; SQNR / rel err: this tensor, int8 vs float, errors from upstream included; range use: "
              "share of the int8 grid the tensor's values span per image (low = range stretched by outliers)."]
    return "\n".join(lines)


def _short(name: str, keep: int = 70) -> str:
    """Fused TFLite names list every folded op; the first part is enough to find it."""
    first = name.split(";")[0]
    return first if len(first) <= keep else "..." + first[-keep:]
