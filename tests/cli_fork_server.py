"""A fork server for the suite's `edgex` calls: TensorFlow and Keras are imported once, then each call is
a forked child that runs `python -m edgex ARGS` (runpy, as the interpreter does) with its own fds, cwd and
environment, and exits through the interpreter as a fresh process would.

Why: about 80 CLI calls in the fast stage load a Keras model, and each spent ~5 s importing TensorFlow
before doing anything else. Nothing of edgex is imported here, so every call imports edgex itself, after
its environment is set. Only imports happen before the fork (no TensorFlow op runs, no thread pool
starts). Tests that check the process itself (what is imported, startup, signals) spawn real processes.

Protocol, one JSON line per call on stdin: {"argv", "env", "cwd", "stdout", "stderr"}; answers on stdout:
the child's pid, then its exit status (negative: the signal that killed it), one line each.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402,F401
import tensorflow  # noqa: E402,F401


def serve() -> dict:
    """Answer calls until stdin closes; in each forked child, return that child's call."""
    answers = os.fdopen(os.dup(1), "w")
    for line in sys.stdin:
        call = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            answers.close()
            return call
        answers.write(f"{pid}\n")
        answers.flush()
        _, status = os.waitpid(pid, 0)
        answers.write(f"{os.waitstatus_to_exitcode(status)}\n")
        answers.flush()
    raise SystemExit(0)


def become(call: dict) -> None:
    """Turn this forked child into `python -m edgex ARGV` started from the call's cwd and environment."""
    os.setsid()  # its own process group: a timeout kills it and everything it started
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, call["stdout"], os.O_WRONLY | os.O_CREAT),
                            (2, call["stderr"], os.O_WRONLY | os.O_CREAT)):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    os.environ.clear()
    os.environ.update(call["env"])
    os.chdir(call["cwd"])
    sys.path[0] = call["cwd"]  # what `python -m` puts first
    sys.argv = ["-m", *call["argv"]]
    import atexit
    import runpy
    import threading
    import traceback

    try:
        runpy.run_module("edgex", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exit_status(exc)
    except BaseException:
        traceback.print_exc()
        code = 1
    # What the interpreter does on exit, minus tearing down TensorFlow's modules (over a second per call):
    threading._shutdown()  # wait for non-daemon threads
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_status(exc: SystemExit) -> int:
    """The status the interpreter gives a SystemExit: None is 0, an int itself, anything else printed and 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    become(serve())
