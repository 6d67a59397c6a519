"""Artifact folders: staging beside the destination, manifest written last, atomic rename into place.

A failed or interrupted run leaves no half artifact: until the rename, everything lives in a
hidden staging folder that is removed on failure, on SIGINT/SIGTERM (see edgex.artifacts.signals), or, after
a kill -9, by the next run into the same folder. A full disk is exit 74 with the staging removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from edgex.artifacts.hashing import sha256_file, write_json
from edgex.artifacts.lock import pid_alive
from edgex.artifacts.manifest import MANIFEST, parse_manifest
from edgex.artifacts.signals import deferred_signals, pause_point
from edgex.errors import EdgexError, is_disk_full, output_failure

STAGING_PREFIX = ".edgex-staging-"
__all__ = ["MANIFEST", "STAGING_PREFIX", "artifact_dir", "clean_stale_staging", "describe_files", "publish",
           "read_manifest", "staged"]


def artifact_dir(output: Path, model_name: str, target: str, precision: str) -> Path:
    return Path(output) / model_name / f"{target}-{precision}"


def clean_stale_staging(parent: Path) -> list[Path]:
    """Remove staging folders left by runs that were killed (their process is gone); return them."""
    removed = []
    if not parent.is_dir():
        return removed
    for child in parent.glob(STAGING_PREFIX + "*"):
        try:
            pid = int(child.name[len(STAGING_PREFIX) :].split("-")[0])
        except ValueError:
            continue
        if not pid_alive(pid):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def _remove(path: Path) -> None:
    with deferred_signals():
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def staged(destination: Path) -> Iterator[Path]:
    """Yield a fresh staging folder; `publish` moves it to `destination`, anything else discards it.

    A disk-full OSError raised inside the block (by any converter) becomes IOFailure (74) after the
    staging folder is gone, so no truncated file survives.
    """
    parent = destination.parent
    created_parent = not parent.exists()
    try:
        parent.mkdir(parents=True, exist_ok=True)
        clean_stale_staging(parent)
        staging = parent / f"{STAGING_PREFIX}{os.getpid()}-{destination.name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
    except OSError as exc:
        raise output_failure(exc, parent, "create the output folder") from exc
    published = False
    try:
        yield staging
        published = destination.exists() and not staging.exists()
    except EdgexError:
        raise
    except Exception as exc:
        if isinstance(exc, OSError) or is_disk_full(exc):
            raise output_failure(exc, destination) from exc
        raise
    finally:
        _remove(staging)
        if created_parent and not published:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only if empty: nothing else was written there


def publish(staging: Path, destination: Path, manifest: dict) -> None:
    """Write the manifest last, then swap the staging folder into place (replacing an older artifact)."""
    pause_point("publish")
    try:
        write_json(staging / MANIFEST, manifest)
        with deferred_signals():
            old = None
            if destination.exists():
                old = destination.parent / f"{STAGING_PREFIX}{os.getpid()}-old-{uuid.uuid4().hex[:8]}"
                destination.rename(old)
            try:
                staging.rename(destination)
            except OSError:
                if old is not None:
                    old.rename(destination)  # put the previous artifact back
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise output_failure(exc, destination) from exc


def describe_files(files: list[Path], root: Path) -> list[dict]:
    return [{"name": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in files]


def read_manifest(folder: Path) -> dict:
    """The manifest of an artifact folder, validated (see edgex.artifacts.manifest.parse_manifest)."""
    path = Path(folder) / MANIFEST
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        from edgex.errors import MissingInputError

        raise MissingInputError(f"{Path(folder)} has no {MANIFEST}; it is not an edgex artifact",
                                "Point at an artifact folder (OUTPUT/<model>/<target>-<precision>).") from exc
    return parse_manifest(text, str(path))

