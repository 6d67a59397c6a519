"""Fail fast, before any test, when the installed packages drift from the lock file.

    python tests/check_environment.py requirements/lock-py3.11-linux-x86_64.txt

A suite that passed with one set of versions says nothing about another; `make lock` records a
new set on purpose. Exit 0 when every pinned package is installed at its pinned version.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


def pins(lock: Path) -> dict[str, str]:
    out = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"[-_.]+", "-", name).lower()] = version.split(";")[0].strip()
    return out


def main() -> int:
    lock = Path(sys.argv[1])
    drift = []
    for name, want in sorted(pins(lock).items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        if have != want:
            drift.append(f"{name} {have} (lock: {want})")
    if drift:
        print(f"environment differs from {lock}: {'; '.join(drift)}", file=sys.stderr)
        print("Rebuild it: rm -rf .venv && make setup. Or, to move to new versions on purpose: make lock.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
