"""The system OpenSSH client as a transport: strict host keys, no prompts, keepalive, one deadline.

The system `ssh` is used (not a Python SSH library) so the user's ~/.ssh/config, agent, jump hosts
and known_hosts work as they do in their shell. Every call runs in its own process group and is
killed when the overall deadline passes; ssh's own failures (exit 255) become one-line errors:
a refused key or an unknown host key exit 77 (retrying will not help), anything on the network exit 75.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgex.errors import IOFailure, MissingInputError, RefusedError, RemoteError
from edgex.remote.target import RemoteTarget

SSH_FAILED = 255
_AUTH_REFUSED = ("permission denied", "too many authentication failures", "no supported authentication")
_HOST_KEY = ("host key verification failed", "remote host identification has changed",
             "no matching host key", "host key for")
_UNREACHABLE = ("connect to host", "could not resolve", "no route to host", "network is unreachable",
                "connection timed out", "connection refused")
_DISK_FULL = ("no space left on device", "disk quota exceeded")


@dataclass
class Deadline:
    """One budget for the whole remote session: every call gets what is left of it."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)


@dataclass(frozen=True)
class SshOptions:
    """How to connect. Host-key checking stays strict unless `accept_new_host` (first contact only)."""

    identity: Path | None = None
    known_hosts: Path | None = None
    accept_new_host: bool = False
    connect_timeout: int = 10
    keepalive_interval: int = 5
    keepalive_count: int = 3


class CallTimeout(RemoteError):
    """One call passed its own time limit (the session may go on; the device side was stopped)."""


class SshClient:
    def __init__(self, target: RemoteTarget, options: SshOptions, deadline: Deadline):
        if options.identity is not None and not Path(options.identity).is_file():
            raise MissingInputError(f"identity file {options.identity} does not exist",
                                    "Pass the private key that the device accepts to --identity")
        self.target = target
        self.options = options
        self.deadline = deadline

    def command(self, script: str) -> list[str]:
        """The ssh argv running `script` under /bin/sh on the device (whatever the login shell is)."""
        opts = self.options
        argv = ["ssh", "-T", "-x", "-a",
                "-o", "BatchMode=yes",
                "-o", f"StrictHostKeyChecking={'accept-new' if opts.accept_new_host else 'yes'}",
                "-o", f"ConnectTimeout={opts.connect_timeout}",
                "-o", f"ServerAliveInterval={opts.keepalive_interval}",
                "-o", f"ServerAliveCountMax={opts.keepalive_count}",
                "-o", "LogLevel=ERROR"]
        if opts.identity is not None:
            argv += ["-i", str(opts.identity), "-o", "IdentitiesOnly=yes"]
        if opts.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={opts.known_hosts}"]
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        return [*argv, self.target.destination, "exec /bin/sh -c " + shlex.quote(script)]

    def start(self, script: str, *, stdin=subprocess.PIPE) -> subprocess.Popen:
        """A long-lived call (its stdin stays open; the device side ends when it closes)."""
        return subprocess.Popen(self.command(script), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    def run(self, script: str, *, stdin_path: Path | None = None, what: str = "the command",
            timeout: float | None = None) -> tuple[int, bytes, str]:
        """Run `script`, return (exit status, stdout, stderr); ssh-level failures raise.

        stdin is a file to stream, or an open pipe held until the script ends, so that a remote
        watchdog reading it sees end-of-file only when this side (or the connection) goes away.
        `timeout` bounds this call (CallTimeout); the session's deadline bounds all of them (RemoteError).
        """
        left = self.deadline.left()
        limit = max(min(left, timeout) if timeout is not None else left, 0.1)
        try:
            if stdin_path is not None:
                with open(stdin_path, "rb") as source:
                    proc = self.start(script, stdin=source)
                    try:
                        out, err = proc.communicate(timeout=limit)
                    finally:
                        kill_group(proc)
            else:
                proc = self.start(script)
                try:
                    out, err = _communicate_holding_stdin(proc, limit)
                finally:
                    kill_group(proc)
        except subprocess.TimeoutExpired:
            if timeout is not None and timeout < left:
                raise CallTimeout(f"{what} on {self.target} took longer than {timeout:.0f} s") from None
            raise deadline_error(self.target, what, self.deadline.seconds) from None
        stderr = err.decode(errors="replace")
        if proc.returncode == SSH_FAILED:
            raise self.failure(stderr, what)
        return proc.returncode, out, stderr

    def failure(self, stderr: str, what: str) -> Exception:
        """ssh's exit 255 as a typed, one-line error."""
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        said = lines[-1] if lines else "the connection closed"
        low = stderr.lower()
        if any(key in low for key in _AUTH_REFUSED):
            key = f"key {self.options.identity}" if self.options.identity else "keys"
            return RefusedError(f"{self.target} refused the {key} ({said})",
                                "Pass the private key whose public half is in the device's ~/.ssh/authorized_keys "
                                "with --identity")
        if any(key in low for key in _HOST_KEY):
            return RefusedError(f"host key of {self.target} is unknown or changed ({said})",
                                "Check the device's fingerprint, then add it to known_hosts "
                                "(first contact: rerun with --accept-new-host)")
        if any(key in low for key in _UNREACHABLE):
            return RemoteError(f"{self.target} is unreachable ({said})",
                               "Check that the device is up, on the network and running sshd, then retry")
        return RemoteError(f"connection to {self.target} lost during {what} ({said})",
                           "Check the device (power, network, overheating) and retry")


def _communicate_holding_stdin(proc: subprocess.Popen, limit: float) -> tuple[bytes, bytes]:
    """Read everything while keeping our end of stdin open (never write to it)."""
    import threading

    chunks: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:
        chunks[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
    proc.stdin.close()
    return chunks.get("out", b""), chunks.get("err", b"")


def kill_group(proc: subprocess.Popen) -> None:
    """Stop a local ssh call and anything it started; closing it makes the device side see EOF."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None and not stream.closed:
            stream.close()


def deadline_error(target: RemoteTarget, what: str, seconds: float) -> RemoteError:
    return RemoteError(f"{target} did not finish {what} within the {seconds:.0f} s deadline",
                       "Raise --remote-timeout, or check the device (overheated, swapping, hung)")


def disk_full(stderr: str) -> bool:
    return any(key in stderr.lower() for key in _DISK_FULL)


def disk_full_error(target: RemoteTarget, where: str) -> IOFailure:
    return IOFailure(f"device {target} ran out of disk space in {where}",
                     "Free space there, or set TMPDIR for the device user to a larger disk")
