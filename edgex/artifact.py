"""Artifact folders: staging beside the destination, manifest written last, atomic rename into place.

A failed or interrupted run leaves no half artifact: until the rename, everything lives in a
hidden staging folder that is removed on failure (or, after a kill, by the next run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from edgex.errors import IOFailure, OutputError
from edgex.sources import sha256_file

MANIFEST = "manifest.json"
STAGING_PREFIX = ".edgex-staging-"


def artifact_dir(output: Path, model_name: str, target: str, precision: str) -> Path:
    return Path(output) / model_name / f"{target}-{precision}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(parent: Path) -> None:
    """Remove staging folders left by runs that were killed (their process is gone)."""
    if not parent.is_dir():
        return
    for child in parent.glob(STAGING_PREFIX + "*"):
        try:
            pid = int(child.name[len(STAGING_PREFIX) :].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(child, ignore_errors=True)


@contextlib.contextmanager
def staged(destination: Path) -> Iterator[Path]:
    """Yield a fresh staging folder; `publish` moves it to `destination`, anything else discards it."""
    parent = destination.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {parent}: {exc.strerror}",
                          "Choose a writable --output.") from exc
    clean_stale_staging(parent)
    staging = parent / f"{STAGING_PREFIX}{os.getpid()}-{destination.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, destination: Path, manifest: dict) -> None:
    """Write the manifest last, then swap the staging folder into place (replacing an older artifact)."""
    try:
        write_json(staging / MANIFEST, manifest)
        old = None
        if destination.exists():
            old = destination.parent / f"{STAGING_PREFIX}{os.getpid()}-old-{uuid.uuid4().hex[:8]}"
            destination.rename(old)
        staging.rename(destination)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise IOFailure(f"cannot write artifact {destination}: {exc.strerror}",
                        "Check free disk space and permissions.") from exc


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def describe_files(files: list[Path], root: Path) -> list[dict]:
    return [{"name": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in files]


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())
