"""Pair the rows of two reports (same artifact on the same device and threads), and name what differs
between the machines and tool versions that measured them, so nothing is compared silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgex.report.schema import load_report, row_threads

# (target, precision, model, device, threads): one artifact timed one way
RowKey = tuple[str, str, str, str, str]


def load_side(path: Path) -> tuple[dict, Path]:
    """A report given as its folder or as its report.json: (the report, the report.json path)."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    return load_report(file), file


def ran_on(row: dict, report: dict) -> dict:
    """The machine a row was measured on: its remote device's probe, else the report's own machine."""
    return row["device"] if isinstance(row.get("device"), dict) else (report.get("machine") or {})


def row_key(row: dict, report: dict) -> RowKey:
    model = Path(row["path"]).parent.name if row.get("path") else row.get("name", "?")
    device = row["device"].get("remote") if isinstance(row.get("device"), dict) else None
    device = device or (report.get("settings") or {}).get("device") or "cpu"
    return (row.get("target") or "?", row.get("precision") or "?", model, str(device),
            str(row_threads(row) or "default"))


def key_label(key: RowKey) -> str:
    target, precision, model, device, threads = key
    return f"{model} {target}-{precision} ({device}, {threads} threads)"


@dataclass
class Pairing:
    pairs: list[tuple[RowKey, dict, dict]] = field(default_factory=list)
    new_only: list[tuple[RowKey, dict]] = field(default_factory=list)
    gone: list[tuple[RowKey, dict]] = field(default_factory=list)


def _by_key(report: dict) -> dict[RowKey, dict]:
    """Rows by key; a key met twice keeps the first row and marks the second apart (never merged)."""
    out: dict[RowKey, dict] = {}
    for row in report.get("results", []):
        key = row_key(row, report)
        while key in out:
            key = (*key[:2], key[2] + "'", *key[3:])
        out[key] = row
    return out


def pair_rows(baseline: dict, new: dict) -> Pairing:
    old_rows, new_rows = _by_key(baseline), _by_key(new)
    pairing = Pairing()
    for key, row in old_rows.items():
        if key in new_rows:
            pairing.pairs.append((key, row, new_rows[key]))
        else:
            pairing.gone.append((key, row))
    pairing.new_only = [(key, row) for key, row in new_rows.items() if key not in old_rows]
    return pairing


def _isa_class(machine: dict) -> str | None:
    from edgex.isa import isa_class

    return isa_class(machine.get("isa") or [], machine.get("machine")) if machine.get("machine") else None


def environment_differences(baseline: dict, new: dict, pairing: Pairing) -> list[str]:
    """One line per difference in CPU, ISA class, cores, runtime or library version, or evaluation images."""
    lines: list[str] = []
    seen: set[str] = set()

    def note(text: str) -> None:
        if text not in seen:
            seen.add(text)
            lines.append(text)

    for key, old_row, new_row in pairing.pairs:
        old_m, new_m = ran_on(old_row, baseline), ran_on(new_row, new)
        for field_name, label in (("cpu_model", "CPU"), ("machine", "architecture"), ("cores_usable", "usable cores")):
            if old_m.get(field_name) != new_m.get(field_name):
                note(f"{label} differs: baseline {old_m.get(field_name)}, new {new_m.get(field_name)}")
        if _isa_class(old_m) != _isa_class(new_m):
            note(f"ISA class differs: baseline {_isa_class(old_m)}, new {_isa_class(new_m)} "
                 "(int8 kernels, and so accuracy and latency, may differ)")
        old_rt, new_rt = old_row.get("runtime") or {}, new_row.get("runtime") or {}
        if old_rt.get("version") != new_rt.get("version"):
            note(f"runtime {old_rt.get('name') or key[0]} differs: baseline {old_rt.get('version')}, "
                 f"new {new_rt.get('version')}")
    old_libs = (baseline.get("machine") or {}).get("libraries") or {}
    new_libs = (new.get("machine") or {}).get("libraries") or {}
    for name in sorted(set(old_libs) | set(new_libs)):
        if old_libs.get(name) != new_libs.get(name):
            note(f"{name} differs: baseline {old_libs.get(name)}, new {new_libs.get(name)}")
    old_data, new_data = baseline.get("eval_data") or {}, new.get("eval_data") or {}
    if old_data and new_data and old_data.get("sha256") != new_data.get("sha256"):
        note(f"evaluation images differ: baseline {old_data.get('count')} from {old_data.get('path')}, new "
             f"{new_data.get('count')} from {new_data.get('path')} (accuracy is paired on the images both share)")
    return lines
