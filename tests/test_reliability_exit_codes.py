"""Every exit code edgex can return is documented, in `--help` and in the README table."""

from __future__ import annotations

import re

from helpers import REPO, run_edgex

from edgex import errors


def _codes() -> set[int]:
    return {value for name, value in vars(errors).items() if name.startswith("EXIT_") and isinstance(value, int)}


def test_help_and_readme_list_every_exit_code():
    help_text = run_edgex("--help").stdout
    readme = (REPO / "README.md").read_text()
    table = set(map(int, re.findall(r"^\| (\d+) \|", readme, flags=re.M)))
    listed = set(map(int, re.findall(r"^  (\d+) ", help_text, flags=re.M)))
    assert _codes() <= table, sorted(_codes() - table)
    assert _codes() <= listed, sorted(_codes() - listed)
    assert {130, 143, 73, 74, 77} <= _codes()


def test_every_error_class_has_a_documented_code():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.EdgexError)]
    assert all(c.exit_code in _codes() for c in classes)
