"""Run-time invariants of a diagnosis: a figure that cannot be true is a bug, and stops the report.

Checked on the finished JSON, so every path to a printed number is covered, whatever computed it:
- a share (range use, clipped share, top-1 agreement) lies in [0, 1];
- SQNR and relative error describe the same comparison: SQNR = -20 log10(rel err), within the rounding
  of both, and +inf only with a relative error of exactly 0;
- a comparison is either fully there or "not comparable" (both None), never half.
"""

from __future__ import annotations

import math

from edgex.errors import EXIT_INTERNAL, EdgexError

SQNR_DIGITS, REL_DIGITS = 2, 4  # how run.py rounds them (metrics.rounded)
_SHARES = ("range_use", "clipped")


class DiagnosisBug(EdgexError):
    """A diagnosis figure broke an invariant: the measurement, not the model, is wrong (exit 1)."""

    exit_code = EXIT_INTERNAL


def check(result: dict) -> dict:
    """Raise DiagnosisBug on the first impossible figure anywhere in `result`; return it unchanged."""
    _walk(result, "diagnosis")
    return result


def _walk(node, path: str) -> None:
    if isinstance(node, dict):
        _check_dict(node, path)
        for key, value in node.items():
            _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]")


def _check_dict(node: dict, path: str) -> None:
    for key, value in node.items():
        if key in _SHARES or key.endswith("agreement"):
            _share(value, f"{path}.{key}")
        if key.endswith("sqnr_db"):
            prefix = key[: -len("sqnr_db")]
            if prefix + "rel_error" not in node:
                raise DiagnosisBug(f"{path}.{key} has no {prefix}rel_error beside it")
            consistent(value, node[prefix + "rel_error"], f"{path}.{key}")


def _share(value, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise DiagnosisBug(f"{where} = {value!r} is not a share in [0, 1]")


def consistent(sqnr_db: float | None, rel_error: float | None, where: str = "a comparison") -> None:
    """SQNR (rounded to SQNR_DIGITS) and relative error (rounded to REL_DIGITS) of one comparison agree."""
    if sqnr_db is None or rel_error is None:
        if sqnr_db is not None or rel_error is not None:
            raise DiagnosisBug(f"{where}: SQNR {sqnr_db!r} with relative error {rel_error!r} (half comparable)")
        return
    if math.isnan(sqnr_db) or math.isnan(rel_error) or rel_error < 0 or math.isinf(rel_error):
        raise DiagnosisBug(f"{where}: SQNR {sqnr_db!r} with relative error {rel_error!r}")
    if math.isinf(sqnr_db):
        if sqnr_db < 0 or rel_error != 0.0:
            raise DiagnosisBug(f"{where}: SQNR {sqnr_db} dB with relative error {rel_error}")
        return
    half_rel, half_db = 0.5 * 10.0 ** -REL_DIGITS, 0.5 * 10.0 ** -SQNR_DIGITS
    lowest = -20.0 * math.log10(rel_error + half_rel) - half_db
    highest = math.inf if rel_error <= half_rel else -20.0 * math.log10(rel_error - half_rel) + half_db
    if not lowest - 1e-9 <= sqnr_db <= highest + 1e-9:
        raise DiagnosisBug(f"{where}: SQNR {sqnr_db} dB is not -20 log10({rel_error}) = "
                           f"{-20.0 * math.log10(max(rel_error, 1e-300)):.2f} dB")
