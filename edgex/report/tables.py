"""Formatting shared by the Markdown and HTML reports: one row of display cells per artifact."""

from __future__ import annotations

import json

from edgex.report.schema import row_threads

COLUMNS = ("artifact", "status", "top-1", "top-5", "Δ top-1 vs FP32 (95% CI)", "agreement", "p50 ms", "p90 ms",
           "threads", "runs (time)", "images/s", "× floor", "size MB", "peak RSS MB", "ran as")


def _num(value, digits: int = 1, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def ran_as(runtime: dict | None) -> str:
    if not runtime:
        return "–"
    where = runtime.get("device") or ", ".join(p.replace("ExecutionProvider", "") for p in runtime.get("providers", []))
    parts = (runtime.get("name"), runtime.get("version"), where, runtime.get("precision_ran"))
    return " ".join(str(p) for p in parts if p)


def drop_cell(vs: dict | None) -> str:
    if not vs:
        return "–"
    low, high = vs["ci95_pp"]
    mark = "" if vs["significant"] else " (noise)"
    change, low_change, high_change = (0.0 - v for v in (vs["drop_pp"], high, low))  # 0.0 - v: no "-0.00"
    return f"{change:+.2f} pp [{low_change:+.2f}, {high_change:+.2f}]{mark}"


def threads_cell(row: dict) -> str:
    """Latencies at different thread counts do not compare: every row shows its own."""
    threads = row_threads(row)
    return "–" if threads is None else str(threads)


def result_cells(row: dict) -> list[str]:
    """The display cells of one artifact, in COLUMNS order."""
    accuracy, latency, vs = row.get("accuracy") or {}, row.get("latency_ms") or {}, row.get("vs_source")
    status = "ok" if row["status"] == "ok" else f"FAILED ({row.get('kind')}): {row.get('error')}"
    runs = f"{row['runs']} ({row['seconds']:.1f} s)" if row.get("runs") else "–"
    name = row["name"] + (" ★" if row.get("pareto") else "")
    return [name, status, _num(accuracy.get("top1"), 4), _num(accuracy.get("top5"), 4), drop_cell(vs),
            _num(vs and vs["agreement"], 4), _num(latency.get("p50")), _num(latency.get("p90")), threads_cell(row),
            runs, throughput_cell(row), floor_cell(row), _num(row.get("size_bytes"), 1, 1e-6),
            _num(row.get("peak_rss_mb"), 0), ran_as(row.get("runtime"))]


def throughput_cell(row: dict) -> str:
    """Images/s with --streams requests in flight, else one request at --batch."""
    streams = row.get("streams")
    if streams:
        return f"{streams['throughput_ips']:.1f} ({streams['streams']} streams)"
    return _num(row.get("throughput_ips"))


def floor_cell(row: dict) -> str:
    """p50 over the machine's floor for this model's MACs at this precision (bench --floor)."""
    floor = row.get("floor")
    return f"{floor['ratio']:.2f}" if floor else "–"


def reference_cells(ref: dict) -> list[str]:
    accuracy = ref.get("accuracy") or {}
    return [f"{ref['name']} (reference)", "ok", _num(accuracy.get("top1"), 4), _num(accuracy.get("top5"), 4), "0",
            "1.0000", "–", "–", "–", "–", "–", "–", "–", "–",
            f"{ref.get('target') or 'source'} (in-process)"]


def machine_line(report: dict) -> str:
    """Where the numbers were measured: the device of a remote run (then the host), else this machine."""
    devices = {json.dumps(r["device"], sort_keys=True): r["device"] for r in report.get("results", [])
               if isinstance(r.get("device"), dict)}
    host = _describe_machine(report.get("machine") or {})
    if not devices:
        return host
    remote = "; ".join(f"device {d.get('remote')}: {_describe_machine(d)}" for d in devices.values())
    return f"{remote} (driven from host {host})"


def _describe_machine(m: dict) -> str:
    isa = ", ".join(m.get("isa") or []) or "none detected"
    extras = "".join(f", {label} {m[key]}" for key, label in (("governor", "governor"), ("temperature_c", "°C"))
                     if m.get(key) is not None)
    return (f"{m.get('cpu_model')} ({m.get('machine')}), {m.get('cores_usable')} usable cores, ISA: {isa}; "
            f"{m.get('os')}; Python {m.get('python')}, numpy {m.get('numpy')}{extras}")


def settings_line(report: dict) -> str:
    s = report.get("settings") or {}
    if not s.get("latency", True):
        return "accuracy only (no timing)"
    streams = (f"; then images/s with {s['streams']} requests in flight, as long again"
               if (s.get("streams") or 1) > 1 else "")
    return (f"batch {s.get('batch')}, threads {s.get('threads') or _default_threads(report)}, {s.get('warmup')} "
            f"warm-up runs, then at least {s.get('min_runs')} runs and {s.get('min_seconds')} s per artifact, one "
            f"artifact at a time{streams}")


def floor_line(report: dict) -> str | None:
    """The machine's floor the × floor column divides by (bench --floor), or why there is none."""
    floor = report.get("floor")
    if not floor:
        return None
    if "error" in floor:
        return f"floor: not measured ({floor['error']})"
    rates = ", ".join(f"{kind} {rate:.0f} GMAC/s" for kind, rate in floor["gmac_per_s"].items() if rate)
    return (f"floor: {rates} (best Xception-shaped pointwise convolution chains, {floor['threads']} threads); "
            "× floor = p50 / (the artifact's MACs at that rate)")


def _default_threads(report: dict) -> str:
    """No --threads: every usable core of the machine that ran them, and how many that was."""
    counts = sorted({t for t in map(row_threads, report.get("results", [])) if t})
    return "all usable cores" + (f" ({', '.join(map(str, counts))})" if counts else "")
