"""A real OpenSSH server on 127.0.0.1 and a bare "device" Python (numpy + ai-edge-litert only).

The server runs Debian's /usr/sbin/sshd in the foreground with a throwaway host key, a throwaway
client key and its own config on a free port; tests that need it skip (with the reason) only where
openssh-server is not installed (`make setup` installs it when run as root).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")


@dataclass
class Sshd:
    process: subprocess.Popen
    port: int
    user: str
    host_key: Path
    client_key: Path
    other_key: Path
    known_hosts: Path
    folder: Path
    device_tmp: Path

    @property
    def remote(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def ssh_args(self, *, key: Path | None = None) -> list[str]:
        """Flags for `edgex ... --remote` that connect to this server."""
        return ["--remote", self.remote, "--identity", str(key or self.client_key),
                "--known-hosts", str(self.known_hosts)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgex-test", "-f", str(path)], check=True)


def _wait_listening(port: int, process: subprocess.Popen, seconds: float = 10) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {process.stderr.read().decode()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on port {port} within {seconds} s")


@contextlib.contextmanager
def running_sshd(folder: Path):
    """Start sshd -D on a free loopback port; stop it (and its session children) afterwards."""
    if not SSHD.exists():
        pytest.skip("/usr/sbin/sshd is absent: apt-get install -y openssh-server (make setup does it as root)")
    folder.mkdir(parents=True, exist_ok=True)
    host_key, client_key, other_key = folder / "host_key", folder / "client_key", folder / "other_key"
    for key in (host_key, client_key, other_key):
        _keygen(key)
    device_tmp = folder / "device-tmp"  # the device's $TMPDIR: what edgex leaves there is easy to see
    device_tmp.mkdir()
    (folder / "authorized_keys").write_text(f'environment="TMPDIR={device_tmp}" '
                                            + client_key.with_suffix(".pub").read_text())
    port = _free_port()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    config = folder / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {folder / "sshd.pid"}
AuthorizedKeysFile {folder / "authorized_keys"}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PrintMotd no
PermitUserEnvironment TMPDIR
MaxStartups 50
MaxSessions 50
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        _wait_listening(port, process)
        yield Sshd(process, port, getpass.getuser(), host_key, client_key, other_key, folder / "known_hosts", folder,
                   device_tmp)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        process.wait(timeout=10)


def device_python() -> Path:
    """A venv with only numpy and ai-edge-litert (the versions of this venv), built once per machine."""
    versions = {name: metadata.version(name) for name in ("numpy", "ai-edge-litert")}
    tag = f"py{sys.version_info.major}{sys.version_info.minor}-np{versions['numpy']}-litert{versions['ai-edge-litert']}"
    root = Path(os.environ.get("EDGEX_DEVICE_VENVS", "/tmp/edgex-test-device-venvs"))
    venv = root / tag
    done = venv / ".complete"
    if done.exists():
        return venv / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            f"numpy=={versions['numpy']}", f"ai-edge-litert=={versions['ai-edge-litert']}"],
                           check=True, capture_output=True)
            done.write_text(tag)
    return venv / "bin" / "python"

