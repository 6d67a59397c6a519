"""argparse value types shared by commands."""

from __future__ import annotations

import argparse


def floats3(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.replace(" ", "").split(",")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("give one number or three, comma-separated")
    return tuple(parts)  # type: ignore[return-value]


def size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError("use N or HxW, e.g. 299 or 299x299") from exc
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise argparse.ArgumentTypeError("use N or HxW, e.g. 299 or 299x299")
    return values[0], values[1]
