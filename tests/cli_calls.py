"""How the suite runs `edgex ARGS` as a user would: a fresh process per call, forked from a server that has
TensorFlow imported already (tests/cli_fork_server.py), or a plain `python -m edgex` child.

The plain child is used where the fork could differ from a fresh interpreter: an added variable other than
EDGEX_* (PYTHONPATH, TF_*, KERAS_* act at import time), a call while another is running in this process,
a server that failed, or EDGEX_TEST_FORK_SERVER=0 (the whole suite as plain children).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SERVER = Path(__file__).with_name("cli_fork_server.py")


class ForkServer:
    """One server per test process, started on first use and stopped when the process exits."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                                     start_new_session=True)
        self.busy = threading.Lock()
        atexit.register(self.stop)

    def run(self, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory(prefix="edgex-call-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            call = {"argv": argv, "env": env, "cwd": os.getcwd(), "stdout": str(out), "stderr": str(err)}
            self.proc.stdin.write((json.dumps(call) + "\n").encode())
            self.proc.stdin.flush()
            pid = int(self._answer(None))
            deadline = time.monotonic() + timeout
            try:
                status = int(self._answer(deadline))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                self._answer(None)  # the server reaps it
                raise subprocess.TimeoutExpired([sys.executable, "-m", "edgex", *argv], timeout) from None
            encoding = locale.getpreferredencoding(False)
            stdout, stderr = (path.read_text(encoding=encoding) for path in (out, err))
        return subprocess.CompletedProcess([sys.executable, "-m", "edgex", *argv], status, stdout, stderr)

    def _answer(self, deadline: float | None) -> str:
        """One line from the server, read byte by byte so nothing waits in a buffer that select cannot see."""
        fd, line = self.proc.stdout.fileno(), b""
        while not line.endswith(b"\n"):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            byte = os.read(fd, 1)
            if not byte:
                raise ConnectionError("the fork server ended")
            line += byte
        return line.decode()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


_server: ForkServer | None = None
_server_failed = False


def _forkable(added: dict[str, str]) -> bool:
    return os.environ.get("EDGEX_TEST_FORK_SERVER", "1") != "0" and all(k.startswith("EDGEX_") for k in added)


def start_server() -> None:
    """Start this process's server early, so its imports overlap the first test's own work."""
    global _server
    if _server is None and _forkable({}):
        _server = ForkServer()


def run_cli(args: list[str], added: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`python -m edgex ARGS` with `added` variables on top of this environment, as a fresh process."""
    global _server, _server_failed
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **added)
    if not _server_failed and _forkable(added):
        start_server()
        if _server.busy.acquire(blocking=False):
            try:
                return _server.run(args, env, timeout)
            except ConnectionError:
                _server_failed = True  # the plain child below answers this call and the later ones
            finally:
                _server.busy.release()
    return subprocess.run([sys.executable, "-m", "edgex", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
