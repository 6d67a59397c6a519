"""An emulated Raspberry Pi 4 for the tests: Debian's arm64 Python under `qemu-aarch64 -cpu cortex-a72` holding
only numpy, Pillow and ai-edge-litert (this venv's versions, as aarch64 wheels), with a Pi 4's /proc/cpuinfo.

Why the cpuinfo: under qemu-user a program reads the host's x86 /proc/cpuinfo and LiteRT's CPU detection
crashes on it (a segfault in `Interpreter(...)`), so every run bind-mounts tests/data/pi4-cpuinfo.txt over it
in a private mount namespace (`unshare -m`; the host's mounts are untouched).

Built once per machine from the registries only, then reused: Debian's arm64 python3.X packages and their
dependencies are resolved and downloaded by apt with a private state folder (arm64 package lists of the
host's own sources; the host's dpkg is not changed: no `dpkg --add-architecture`), unpacked with `dpkg -x`
into a sysroot, and pip installs the aarch64 wheels into that sysroot's dist-packages. The folder is named
by the versions, under $EDGEX_DEVICE_VENVS (default /tmp/edgex-test-device-venvs), outside the checkout.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

PI4_CPUINFO = Path(__file__).parent / "data" / "pi4-cpuinfo.txt"
CPU = "cortex-a72"  # the Pi 4's core: NEON, no dotprod
WHEELS = ("numpy", "pillow", "ai-edge-litert")
# the glibc of Debian 12's arm64 libc6 and the manylinux tags it runs (pip does not expand them by itself)
GLIBC_MINOR = 36
PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(GLIBC_MINOR, 16, -1)] + ["manylinux2014_aarch64"]


def _python_debs() -> tuple[str, ...]:
    """Debian packages of an aarch64 python3.X like this one (apt adds their dependencies; wheels need libstdc++)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"python{version}-minimal", f"libpython{version}-stdlib", "libstdc++6"


def qemu_aarch64() -> str | None:
    return shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")


def _namespace() -> list[str]:
    """A private mount namespace: as root directly, otherwise inside a user namespace that maps us to root."""
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]


def unavailable() -> str | None:
    """Why this machine cannot emulate the Pi (the one thing to fix), or None when it can."""
    if not qemu_aarch64():
        return "qemu-aarch64 is absent: apt-get install -y qemu-user (make setup does it as root)"
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        return "no apt-get/dpkg: the emulated Pi's Python comes from Debian's arm64 packages"
    probe = subprocess.run([*_namespace(), "sh", "-c", 'mount --bind "$0" /proc/cpuinfo && grep -q 0xd08 /proc/cpuinfo',
                            str(PI4_CPUINFO)], capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[0].strip()
        return (f"cannot bind-mount a Pi's /proc/cpuinfo in a private mount namespace ({why}): LiteRT crashes "
                "under qemu-user without it; run as root, or where user namespaces are allowed")
    return None


def _apt(state: Path, *args: str) -> subprocess.CompletedProcess:
    """apt-get for arm64 with its own lists, cache and (empty) dpkg status: the host's apt and dpkg are untouched."""
    options = {"APT::Architecture": "arm64", "APT::Architectures::": "arm64", "Dir::State::Lists": state / "lists",
               "Dir::State::status": state / "status", "Dir::Cache": state / "cache", "Debug::NoLocking": "1"}
    if os.geteuid() == 0:
        options["APT::Sandbox::User"] = "root"  # the private folders are root's: no drop to _apt for downloads
    flags = [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]
    return subprocess.run(["apt-get", "-q", "-y", *flags, *args], capture_output=True, text=True, timeout=900)


def _unpack_debs(state: Path, sysroot: Path) -> None:
    for folder in (state / "lists" / "partial", state / "cache" / "archives" / "partial"):
        folder.mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    # a third-party source without arm64 or out of reach fails `update` but not the download from Debian's own
    update = _apt(state, "update")
    done = _apt(state, "install", "--download-only", "--no-install-recommends", *_python_debs())
    assert done.returncode == 0, (f"apt-get could not download Debian's arm64 {' '.join(_python_debs())}: "
                                  f"{done.stderr.strip()[-600:]} (apt-get update: {update.stderr.strip()[-400:]})")
    debs = sorted((state / "cache" / "archives").glob("*.deb"))
    assert debs, "apt-get downloaded no arm64 packages"
    for deb in debs:
        subprocess.run(["dpkg", "-x", str(deb), str(sysroot)], check=True)


def _install_wheels(versions: dict[str, str], site: Path) -> None:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "--no-warn-conflicts", "--target", str(site), "--only-binary=:all:", "--implementation", "cp",
                          "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
                          *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
                          *(f"{name}=={version}" for name, version in versions.items())],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, f"pip found no aarch64 wheels for {versions}: {pip.stderr.strip()[-800:]}"


def _write_launcher(root: Path, sysroot: Path, qemu: str) -> Path:
    """`python` for the Pi: a private mount namespace with the Pi's cpuinfo, then qemu running the arm64 python."""
    python = sysroot / "usr" / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    launcher = root / "python"
    launcher.write_text(
        "#!/bin/sh\n# An emulated Raspberry Pi 4's python3 (built by edgex's tests/aarch64_device.py)\n"
        f"exec {' '.join(_namespace())} sh -c 'mount --bind \"$0\" /proc/cpuinfo && exec \"$@\"' "
        f"{root / 'cpuinfo'} {qemu} -cpu {CPU} -L {sysroot} {python} \"$@\"\n")
    launcher.chmod(0o755)
    return launcher


def pi4_python() -> Path:
    """The emulated Pi's python (a launcher script); skips only where the machine cannot emulate, see unavailable()."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    versions = {name: metadata.version(name) for name in WHEELS}
    tag = f"pi4-aarch64-py{sys.version_info.major}{sys.version_info.minor}-" + "-".join(
        f"{name}{version}" for name, version in versions.items())
    base = Path(os.environ.get("EDGEX_DEVICE_VENVS", "/tmp/edgex-test-device-venvs"))
    root = base / tag
    if (root / ".complete").exists():
        return root / "python"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock-pi4", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            sysroot = root / "sysroot"
            site = sysroot / "usr" / "lib" / "python3" / "dist-packages"  # on Debian python's own path, even with -I
            site.mkdir(parents=True)
            _unpack_debs(root / "apt", sysroot)
            _install_wheels(versions, site)
            shutil.rmtree(root / "apt")  # lists and .debs: only the sysroot is needed from now on
            shutil.copyfile(PI4_CPUINFO, root / "cpuinfo")
            launcher = _write_launcher(root, sysroot, qemu_aarch64())
            check = subprocess.run([str(launcher), "-I", "-c", "import platform, numpy, PIL.Image\n"
                                    "from ai_edge_litert.interpreter import Interpreter\nprint(platform.machine())"],
                                   capture_output=True, text=True, timeout=300)
            assert check.stdout.strip() == "aarch64", f"the emulated Pi's python does not start: {check.stderr[-800:]}"
            (root / ".complete").write_text(tag)
    return root / "python"
