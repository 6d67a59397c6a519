"""What a machine can run: runtimes and versions, ISA features, GPU back-ends, and what to expect from int8.

The facts come from the benchmark runner's `probe` (the same one-file runner that runs on devices), so
`edgex doctor` here and `edgex doctor --remote pi@host` describe machines the same way.
"""

from __future__ import annotations

from edgex.isa import ARM64_MACHINES, ARM_INT8_DOT, ARM_MACHINES, X86_INT8_DOT, X86_MACHINES


def int8_outlook(machine: str, isa: list[str]) -> dict:
    """Whether int8 artifacts should be faster than fp32 here, and why (the CPU's int8 dot-product support)."""
    flags = set(isa)
    machine = (machine or "").lower()
    if machine in X86_MACHINES:
        dots = [f for f in X86_INT8_DOT if f in flags]
        if dots:
            return {"int8_dot_product": True, "features": dots,
                    "why": f"{', '.join(dots)}: int8 convolutions use dot-product instructions; "
                    "expect int8 clearly faster than fp32 (often 2-4x on Xception)"}
        if "avx2" in flags:
            return {"int8_dot_product": False, "features": ["avx2"],
                    "why": "no VNNI (avx512_vnni / avx_vnni): int8 runs on AVX2 multiply-add emulation, often only "
                    "1-1.5x faster than fp32 and sometimes slower; the model is still 4x smaller"}
        return {"int8_dot_product": False, "features": [],
                "why": "no AVX2 and no VNNI: int8 kernels have little to work with; int8 may be slower than fp32"}
    if machine in ARM_MACHINES:
        dots = [f for f in ARM_INT8_DOT if f in flags]
        if dots:
            names = {"i8mm": "i8mm (int8 matrix multiply)", "asimddp": "NEON dotprod (asimddp)"}
            return {"int8_dot_product": True, "features": dots,
                    "why": f"{', '.join(names[f] for f in dots)}: XNNPACK and ONNX Runtime use int8 dot products; "
                    "expect int8 clearly faster than fp32"}
        arm32 = machine not in ARM64_MACHINES
        return {"int8_dot_product": False, "features": ["neon"] if {"neon", "asimd"} & flags else [],
                "why": "no NEON dotprod (e.g. Cortex-A72 in a Raspberry Pi 4"
                + ("; and a 32-bit OS" if arm32 else "") + "): int8 uses widening NEON multiplies, typically "
                "1.3-2x over fp32 and sometimes no gain; the model is still 4x smaller"}
    return {"int8_dot_product": None, "features": [], "why": f"unknown CPU architecture {machine or '?'}"}


def machine_findings(machine: dict, local: bool) -> dict:
    """The doctor's findings for one probed machine (the runner probe's dict)."""
    from edgex.runtimes.gpu import gpu_backends

    runtimes = machine.get("runtimes") or {}
    return {"machine": machine, "int8": int8_outlook(machine.get("machine", ""), machine.get("isa") or []),
            "gpu": gpu_backends(runtimes, local=local), "notes": _notes(machine, runtimes)}


def _notes(machine: dict, runtimes: dict) -> list[str]:
    notes = []
    if not any((r or {}).get("available") for r in runtimes.values()):
        notes.append("no runtime installed: pip install ai-edge-litert (or tflite-runtime), onnxruntime or openvino")
    governor = machine.get("governor")
    if governor and governor not in ("performance",):
        notes.append(f"CPU governor is {governor}: latency varies with frequency scaling; for stable numbers "
                     "set 'performance' (cpupower frequency-set -g performance)")
    temperature = machine.get("temperature_c")
    if temperature is not None and temperature >= 75:
        notes.append(f"CPU at {temperature:.0f} C: it may throttle during the benchmark; add cooling")
    litert = runtimes.get("litert") or {}
    numpy_major = str(machine.get("numpy", "0")).split(".")[0]
    if litert.get("package") == "tflite-runtime" and numpy_major.isdigit() and int(numpy_major) >= 2:
        notes.append("tflite-runtime is built for numpy 1: with numpy 2 it may fail to import; "
                     "use ai-edge-litert or pip install 'numpy<2'")
    return notes


def probe_local() -> dict:
    from edgex.runtimes import probe

    info = probe()
    info.pop("ok", None)
    return info


def render(findings: dict, where: str) -> list[str]:
    """Plain lines for the terminal."""
    m = findings["machine"]
    cores = f"{m.get('cores_physical') or '?'} cores / {m.get('cores_logical') or '?'} threads"
    memory = m.get("memory_available_mb")
    lines = [f"{where}: {m.get('cpu_model') or '?'} ({m.get('machine')}, {cores}), {m.get('os', '')}",
             f"  python {m.get('python')}, numpy {m.get('numpy')}"
             + (f", {memory / 1024:.1f} GiB free" if memory else "")
             + (f", governor {m['governor']}" if m.get("governor") else "")
             + (f", {m['temperature_c']:.0f} C" if m.get("temperature_c") is not None else ""),
             f"  ISA: {' '.join(m.get('isa') or []) or '(none reported)'}",
             "  runtimes:"]
    for name, info in (m.get("runtimes") or {}).items():
        info = info or {}
        if info.get("available"):
            extra = info.get("package") or ", ".join(info.get("providers") or info.get("devices") or [])
            lines.append(f"    {name:12} {info.get('version') or '?':12} {extra}")
        else:
            lines.append(f"    {name:12} {'missing':12} {info.get('hint') or ''}")
    lines.append("  gpu:")
    for row in findings["gpu"]:
        state = "available" if row["available"] else f"unavailable: {row['reason']}"
        lines.append(f"    {row['runtime']} {row['backend']}: {state}")
    int8 = findings["int8"]
    verdict = {True: "int8 should be faster", False: "int8 may not be faster", None: "int8: unknown"}
    lines.append(f"  {verdict[int8['int8_dot_product']]}: {int8['why']}")
    lines += [f"  note: {note}" for note in findings["notes"]]
    return lines
