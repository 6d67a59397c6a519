"""The CPU's instruction-set class: which int8 kernels a runtime will pick, and so which recipes are safe.

int8 convolution kernels differ by ISA. With an int8 dot product (x86 VNNI/AMX, Arm dotprod) they
accumulate straight into int32. On AVX2-only x86 (no VNNI) ONNX Runtime's and oneDNN's U8S8 kernels
use VPMADDUBSW, which adds two u8*s8 products into a saturating int16: 255*127*2 = 64770 overflows
it, 255*64*2 = 32640 (7-bit weights) cannot. So an artifact is only as portable as its recipe.
"""

from __future__ import annotations

import platform
from functools import lru_cache

X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")
ARM64_MACHINES = ("aarch64", "arm64")
ARM_MACHINES = (*ARM64_MACHINES, "armv7l", "armv8l", "armv6l")
# CPU flags that give int8 a dot product, strongest first (the doctor names them in this order).
X86_INT8_DOT = ("amx_int8", "avx512_vnni", "avx_vnni")
ARM_INT8_DOT = ("i8mm", "asimddp")

# Every ISA class edgex tells apart, slowest int8 path first.
ISA_CLASSES = ("x86-avx2", "x86-vnni", "arm64", "arm64-dotprod")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """ISA feature flags of the CPU this process runs on.

    /proc/cpuinfo lists the host's flags even where this process sees fewer (qemu-user emulating an
    older CPU, a hypervisor masking AVX-512); on x86 numpy's own CPUID probe corrects it."""
    flags: frozenset[str] = frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = frozenset(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return _as_seen_by_cpuid(flags)


def _as_seen_by_cpuid(flags: frozenset[str]) -> frozenset[str]:
    try:
        import numpy as np

        seen = np._core._multiarray_umath.__cpu_features__  # numpy's runtime CPUID probe
    except (ImportError, AttributeError):
        return flags
    if "avx512f" in flags and seen.get("AVX512F") is False:
        flags = frozenset(f for f in flags if not f.startswith(("avx512", "amx")) and f != "avx_vnni")
    if "avx2" in flags and seen.get("AVX2") is False:
        flags = flags - {"avx2", "fma", "avx_vnni"}
    return flags


def isa_class(flags: frozenset[str] | set[str] | list[str] | None = None, machine: str | None = None) -> str:
    """'x86-vnni', 'x86-avx2', 'arm64-dotprod', 'arm64' or 'other' for a CPU (default: this one)."""
    flags = set(cpu_flags() if flags is None else flags)
    machine = (machine or platform.machine()).lower()
    if machine in X86_MACHINES:
        if flags.intersection(X86_INT8_DOT):
            return "x86-vnni"
        return "x86-avx2" if "avx2" in flags else "other"
    if machine in ARM64_MACHINES:
        return "arm64-dotprod" if flags.intersection(ARM_INT8_DOT) else "arm64"
    return "other"


def portability_warning(manifest: dict | None, running_on: str) -> str | None:
    """Why an int8 artifact may be less accurate on the CPU class `running_on` than where it was verified."""
    quant = (manifest or {}).get("quantization") or {}
    safe, verified = quant.get("safe_isa"), quant.get("verified_isa")
    if safe is None or running_on in safe or running_on == verified:
        return None
    return (f"recipe {quant.get('name')} was verified on {verified} and is not overflow-safe on {running_on}, "
            f"the CPU running it now: its int8 kernels may saturate here. Check accuracy with edgex eval on this "
            f"machine, or rebuild with the default recipe (safe on {', '.join(ISA_CLASSES)}).")
