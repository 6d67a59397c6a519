"""A private folder on the device whose life is tied to one SSH connection.

An "anchor" session creates the folder with `mktemp -d` (mode 700) and then just reads its stdin.
When edgex closes that stdin (done), dies, or the connection drops, the anchor's shell sees
end-of-file or a signal and its EXIT trap kills any runner process group still registered in the
folder and removes the folder. Runner calls hold their own stdin open the same way: a watchdog on
the device kills the runner's process group as soon as the call's connection goes away.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from edgex.errors import IOFailure, RemoteError, UsageError
from edgex.remote.ssh import SshClient, deadline_error, disk_full, disk_full_error, kill_group

EXIT_NOT_FOUND = 127
EXIT_MISMATCH = 74

_ANCHOR = r"""umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/edgex-XXXXXXXX") || exit 73
cleanup() {
  for f in "$d"/.pgid-*; do [ -f "$f" ] && p=$(cat "$f") && kill -KILL "-$p" "$p" 2>/dev/null; done
  rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 141' PIPE
echo "EDGEX_DIR=$d"
if command -v timeout >/dev/null 2>&1; then timeout {seconds} cat >/dev/null; else cat >/dev/null; fi
"""

# Python puts itself in its own process group (so one kill reaches the runner and its children), then runs
# (every kill also names the pid: a connection that drops while Python starts finds no group yet)
# the script or `-c` code in place: no exec, which also works where "python" is a wrapper (qemu-user, a venv shim).
_BOOTSTRAP = """import os, runpy, sys
os.setpgid(0, 0)
args = sys.argv[1:]
if args[0] == "-c":
    sys.argv = ["-c", *args[2:]]
    exec(compile(args[1], "<edgex>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
"""
_RUN = r"""d={dir}; py={python}; n={tag}
cd "$d" || exit 75
exec 3<&0
"$py" -c {bootstrap} {argv} >"$d/.out-$n" 2>"$d/.err-$n" </dev/null &
pid=$!
echo "$pid" >"$d/.pgid-$n"
stop() { kill -TERM "-$pid" "$pid" 2>/dev/null; sleep 1; kill -KILL "-$pid" "$pid" 2>/dev/null; }
trap 'stop; exit 129' HUP; trap 'stop; exit 130' INT; trap 'stop; exit 143' TERM; trap 'stop; exit 141' PIPE
( cat <&3 >/dev/null; kill -TERM "-$pid" "$pid" ) >/dev/null 2>&1 &
watch=$!
wait "$pid"; rc=$?
rm -f "$d/.pgid-$n"
kill "$watch" 2>/dev/null
cat "$d/.err-$n" >&2; cat "$d/.out-$n"; rm -f "$d/.out-$n" "$d/.err-$n"
exit "$rc"
"""

_VERIFY = r"""import hashlib, json, os, sys
folder, expected = sys.argv[1], json.loads(sys.argv[2])
bad = {}
for name, want in expected.items():
    digest = hashlib.sha256()
    try:
        with open(os.path.join(folder, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        got = digest.hexdigest()
    except OSError as exc:
        got = "unreadable: %s" % exc
    if got != want:
        bad[name] = got
print(json.dumps(bad))
sys.exit(74 if bad else 0)
"""

_TMP_DIR = re.compile(r"^/[^\s'\"]*/edgex-[A-Za-z0-9]{8}$")


class RemoteWorkspace:
    """Use as a context manager: the device folder exists exactly while the `with` block runs."""

    def __init__(self, client: SshClient, python: str):
        self.client = client
        self.python = python
        self.dir: str | None = None
        self._anchor: subprocess.Popen | None = None
        self._anchor_stderr = ""
        self.anchor_exit: int | None = None
        self._runs = 0

    def __enter__(self) -> RemoteWorkspace:
        seconds = max(int(self.client.deadline.left()) + 30, 60)
        self._anchor = self.client.start(_ANCHOR.replace("{seconds}", str(seconds)))
        try:
            line = _read_line(self._anchor, self.client.deadline.left())
        except subprocess.TimeoutExpired:
            self.close()
            raise deadline_error(self.client.target, "opening a temp folder", self.client.deadline.seconds) from None
        if not _TMP_DIR.match(line):
            self.close()
            code, err = self.anchor_exit, self._anchor_stderr
            if code == 255:
                raise self.client.failure(err, "connecting")
            if disk_full(err):
                raise disk_full_error(self.client.target, "$TMPDIR (mktemp -d failed)") from None
            if code == 73:
                raise IOFailure(f"cannot create a private temp folder on {self.client.target} ({err.strip()[:200]})",
                                "Make /tmp (or the device user's $TMPDIR) writable")
            raise RemoteError(f"{self.client.target} did not open a temp folder (exit {code}: {err.strip()[:200]})",
                              "Check that the device has a POSIX shell, mktemp and a writable /tmp")
        self.dir = line
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the anchor's stdin: the device removes the folder and stops leftover runners."""
        anchor = self._anchor
        if anchor is None:
            return
        try:
            _, err = anchor.communicate(timeout=15)  # closes stdin first: end-of-file for the device side
            self._anchor_stderr = err.decode(errors="replace")
        except subprocess.TimeoutExpired:
            kill_group(anchor)
        self.anchor_exit = anchor.returncode
        self._anchor = None

    def path(self, name: str) -> str:
        return f"{self.dir}/{name}"

    def upload(self, local: Path, name: str) -> None:
        """Stream one file into the folder (plain `cat`, so no sftp subsystem is needed)."""
        _check_name(name)
        target = shlex.quote(self.path(name))
        mkdir = f"mkdir -p {shlex.quote(self.path(name.rsplit('/', 1)[0]))} && " if "/" in name else ""
        code, _, err = self.client.run(f"{mkdir}cat > {target}", stdin_path=Path(local),
                                       what=f"copying {name}")
        if code != 0:
            if disk_full(err):
                raise disk_full_error(self.client.target, self.dir)
            raise IOFailure(f"copying {name} to {self.client.target}:{self.dir} failed ({err.strip()[:200]})",
                            "Check the device's disk and permissions, then retry")

    def verify(self, expected: dict[str, str]) -> None:
        """Checksums computed on the device; any mismatch (a truncated or corrupted copy) exits 74."""
        code, out, err = self.python_call(["-c", _VERIFY, self.dir, json.dumps(expected)], what="verifying checksums")
        if code == EXIT_MISMATCH:
            bad = json.loads(out.decode().strip().splitlines()[-1])
            name, got = next(iter(bad.items()))
            raise IOFailure(f"{name} arrived corrupted on {self.client.target} (sha256 {got[:16]}..., expected "
                            f"{expected[name][:16]}...)", "The copy was truncated or altered in transit; retry")
        if code != 0:
            raise RemoteError(f"checksum verification failed on {self.client.target} ({err.strip()[:200]})",
                              "Retry; check the device's disk")

    def python_call(self, argv: list[str], what: str, timeout: float | None = None) -> tuple[int, bytes, str]:
        """Run the device's Python in the folder, under the watchdog; a missing interpreter is a usage error."""
        self._runs += 1
        script = (_RUN.replace("{dir}", shlex.quote(self.dir)).replace("{python}", shlex.quote(self.python))
                  .replace("{tag}", str(self._runs)).replace("{bootstrap}", shlex.quote(_BOOTSTRAP))
                  .replace("{argv}", " ".join(shlex.quote(a) for a in argv)))
        code, out, err = self.client.run(script, what=what, timeout=timeout)
        if code == EXIT_NOT_FOUND or (code != 0 and "not found" in err and self.python in err):
            raise UsageError(f"{self.python} not found on {self.client.target}",
                             "Pass the device's Python 3 with --remote-python (e.g. /usr/bin/python3 or a venv's "
                             "bin/python)")
        return code, out, err

    def fetch(self, name: str) -> bytes:
        _check_name(name)
        code, out, err = self.client.run(f"cat {shlex.quote(self.path(name))}", what=f"fetching {name}")
        if code != 0:
            raise IOFailure(f"cannot read {name} back from {self.client.target} ({err.strip()[:200]})",
                            "Retry; check the device's disk")
        return out

    def exists(self) -> bool:
        """Whether the folder is still there (used by tests and by the final check)."""
        code, _, _ = self.client.run(f"test -e {shlex.quote(self.dir)}", what="checking the temp folder")
        return code == 0


def _check_name(name: str) -> None:
    """Names inside the folder: plain parts, at most one sub-folder, nothing hidden (the folder's own files)."""
    parts = name.split("/")
    if not name or len(parts) > 2 or any(not part or part.startswith(".") for part in parts):
        raise ValueError(f"not a plain file name: {name!r}")


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The folder the anchor announces (skipping whatever a login script printed), or '' if it exits first."""
    import selectors
    import time

    end = time.monotonic() + max(timeout, 0.1)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    while True:
        if not selector.select(timeout=max(end - time.monotonic(), 0.01)):
            raise subprocess.TimeoutExpired(proc.args, timeout)
        line = proc.stdout.readline().decode(errors="replace").strip()
        if line.startswith("EDGEX_DIR="):
            return line.removeprefix("EDGEX_DIR=")
        if not line:
            proc.wait(timeout=max(end - time.monotonic(), 1))
            return ""
