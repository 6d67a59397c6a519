"""The package as installed matches the tree: every package listed, no import cycle at module level."""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
# Installed names of the folders outside edgex/ (pyproject's package-dir)
MAPPED = {"converters": "edgex.converters", "calibration": "edgex.calibration"}


def _modules() -> dict[str, Path]:
    found = {}
    for root, prefix in (("edgex", "edgex"), *MAPPED.items()):
        for path in (REPO / root).rglob("*.py"):
            parts = path.relative_to(REPO / root).with_suffix("").parts
            name = ".".join((prefix, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert packages <= listed, sorted(packages - listed)


def test_no_import_cycle_at_module_level():
    """Imports inside functions are how heavy frameworks load lazily; module-level ones must form no cycle."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(name: str, stack: list[str]) -> bool:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle.extend([*stack[stack.index(dep):], dep] if dep in stack else [name, dep])
                return True
            if state.get(dep) is None and visit(dep, [*stack, dep]):
                return True
        state[name] = 2
        return False

    for name in sorted(graph):
        if state.get(name) is None and visit(name, [name]):
            break
    assert not cycle, " -> ".join(cycle)
