"""One run per output folder: a lock file naming its holder, taken over when the holder is dead.

Two `edgex convert` runs into one folder would race on the same artifact names; the second gets
exit 73 naming the first (pid and host). A lock left by a killed run (its pid is gone on this
host) is taken over. The lock file is created complete, by hard-linking a fully written temp file,
so a reader never sees a half-written lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from edgex.errors import OutputError

LOCK_NAME = ".edgex.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(folder: Path) -> dict | None:
    """The holder recorded in a folder's lock ({pid, host, started, command}), or None without a lock."""
    try:
        data = json.loads((Path(folder) / LOCK_NAME).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_stale(holder: dict) -> bool:
    pid, host = holder.get("pid"), holder.get("host")
    return isinstance(pid, int) and host == socket.gethostname() and not pid_alive(pid)


def _created_dirs(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those created (innermost first) to undo later."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


@contextlib.contextmanager
def output_lock(folder: Path | str, command: str = "edgex") -> Iterator[Path]:
    """Hold `folder/.edgex.lock` for the block; raise OutputError (73) if another live run holds it.

    Folders this call created are removed again on exit when they are still empty, so a run that
    fails early leaves no trace.
    """
    folder = Path(folder)
    try:
        created = _created_dirs(folder)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror or exc}",
                          "Choose a writable --output.") from exc
    lock = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
          "command": command, "token": uuid.uuid4().hex}
    try:
        _acquire(lock, me)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if (read_lock(folder) or {}).get("token") == me["token"]:
                lock.unlink()
        _remove_empty(created)


def _acquire(lock: Path, me: dict) -> None:
    tmp = lock.with_name(f"{LOCK_NAME}.{me['token']}.tmp")
    try:
        tmp.write_text(json.dumps(me))
    except OSError as exc:
        raise OutputError(f"cannot write the lock file in {lock.parent}: {exc.strerror or exc}",
                          "Choose a writable --output.") from exc
    try:
        for _ in range(5):
            try:
                os.link(tmp, lock)  # atomic: fails if a lock exists, and the lock appears complete
                return
            except FileExistsError:
                pass
            except OSError as exc:
                raise OutputError(f"cannot create the lock file {lock}: {exc.strerror or exc}",
                                  "Choose a writable --output.") from exc
            holder = read_lock(lock.parent)
            if holder is None:
                continue  # released meanwhile: try again
            if holder and not _is_stale(holder):
                raise OutputError(
                    f"output folder {lock.parent} is in use by another edgex run (pid {holder.get('pid')} "
                    f"on {holder.get('host')}, started {holder.get('started')})",
                    f"Wait for it to finish, or delete {lock} if that process is gone.")
            if not holder and time.time() - _mtime(lock) < 10:
                time.sleep(0.5)  # unreadable and fresh: let its writer finish
                continue
            # Stale (the holder died) or unreadable for long: move it aside; rename lets only one run win.
            claimed = lock.with_name(f"{LOCK_NAME}.stale-{me['token']}.tmp")
            with contextlib.suppress(FileNotFoundError):
                os.rename(lock, claimed)
                claimed.unlink()
        raise OutputError(f"cannot lock output folder {lock.parent}", f"Delete {lock} if no edgex run is active.")
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _remove_empty(created: list[Path]) -> None:
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()
