"""Read an artifact's manifest.json defensively: it may come from anywhere (a download, a device).

`parse_manifest` accepts only a JSON object whose core fields have the right types and whose file
names stay inside the artifact folder, so a crafted manifest cannot point a runtime at
`../../elsewhere`. Unknown extra keys are kept (newer edgex versions add fields).
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

from edgex.errors import DataError, MissingInputError

MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 16 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = {"target": str, "precision": str, "model_file": str, "files": list}


def _safe_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not name or "\0" in name or "\\" in name:
        raise DataError(f"{where}: file name {name!r} is not a plain relative name", "Rebuild the artifact.")
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or name.startswith("/"):
        raise DataError(f"{where}: file name {name!r} points outside the artifact folder",
                        "Do not use this artifact; rebuild it with edgex convert.")
    return name


def parse_manifest(text: str | bytes, where: str = "manifest.json") -> dict:
    """Validate a manifest's text; raise DataError (65) naming `where` for anything malformed."""
    if len(text) > _MAX_MANIFEST_BYTES:
        raise DataError(f"{where} is larger than {_MAX_MANIFEST_BYTES >> 20} MB", "Rebuild the artifact.")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{where} is not valid JSON ({exc})", "Rebuild the artifact with edgex convert.") from None
    if not isinstance(data, dict):
        raise DataError(f"{where} must hold a JSON object, not {type(data).__name__}", "Rebuild the artifact.")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise DataError(f"{where}: {key!r} is missing or not a {kind.__name__}", "Rebuild the artifact.")
    _safe_name(data["model_file"], where)
    for entry in data["files"]:
        if not isinstance(entry, dict):
            raise DataError(f"{where}: every 'files' entry must be an object", "Rebuild the artifact.")
        _safe_name(entry.get("name"), where)
        size, digest = entry.get("bytes"), entry.get("sha256")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise DataError(f"{where}: size of {entry['name']!r} is not a non-negative integer")
        if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
            raise DataError(f"{where}: sha256 of {entry['name']!r} is not 64 hex digits")
    for key in ("preprocess", "parity", "calibration", "quantization", "source"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise DataError(f"{where}: {key!r} must be an object", "Rebuild the artifact.")
    if data.get("classes") is not None and not (
        isinstance(data["classes"], list) and all(isinstance(c, str) for c in data["classes"])
    ):
        raise DataError(f"{where}: 'classes' must be a list of strings", "Rebuild the artifact.")
    return data


def load_manifest(folder: Path | str) -> dict:
    """The validated manifest of an artifact folder (66 if absent, 65 if malformed)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise MissingInputError(f"{Path(folder)} has no {MANIFEST}; it is not an edgex artifact",
                                "Point at an artifact folder (OUTPUT/<model>/<target>-<precision>).")
    return parse_manifest(path.read_bytes(), str(path))


def verify_files(folder: Path | str, manifest: dict) -> None:
    """Every file the manifest lists exists with its recorded size and sha256 (catches truncated copies)."""
    from edgex.artifacts.hashing import sha256_file

    folder = Path(folder)
    for entry in manifest["files"]:
        path = folder / entry["name"]
        if not path.is_file():
            raise MissingInputError(f"artifact file {path} listed in its manifest is missing",
                                    "Copy the whole artifact folder.")
        if entry.get("bytes") is not None and path.stat().st_size != entry["bytes"]:
            raise DataError(f"artifact file {path} has {path.stat().st_size} bytes, its manifest says "
                            f"{entry['bytes']}; it is truncated or modified", "Copy or rebuild the artifact.")
        if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
            raise DataError(f"artifact file {path} does not match the sha256 in its manifest",
                            "Copy or rebuild the artifact.")
