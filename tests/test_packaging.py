"""The package as installed matches the tree: every package listed, no import cycle, modules kept small,
the bench runner reached only through edgex.runtimes, and docs/architecture.md naming every package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
# Installed names of the folders outside edgex/ (pyproject's package-dir)
MAPPED = {"converters": "edgex.converters", "calibration": "edgex.calibration"}
MAX_LINES = 400
LONG_ON_PURPOSE = {"edgex.bench.runner", "edgex.predict.standalone"}  # self-contained files that run alone on devices
RUNNER = "edgex.bench.runner"


def _modules() -> dict[str, Path]:
    found = {}
    for root, prefix in (("edgex", "edgex"), *MAPPED.items()):
        for path in (REPO / root).rglob("*.py"):
            parts = path.relative_to(REPO / root).with_suffix("").parts
            name = ".".join((prefix, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def _packages() -> set[str]:
    return {name for name, path in _modules().items() if path.name == "__init__.py"}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree: ast.Module, module_level: bool):
    """Import statements that run on import (module level: not in functions, not under TYPE_CHECKING), or all."""
    if not module_level:
        yield from (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        return
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or _is_type_checking(node):
            continue
        else:
            stack.extend(ast.iter_child_nodes(node))


def _imported(name: str, path: Path, modules: dict[str, Path], module_level: bool = True) -> set[str]:
    """The edgex modules `name` imports, with the packages Python runs on the way (parents' __init__)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in _import_nodes(ast.parse(path.read_text()), module_level):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets += [base] + [f"{base}.{a.name}" for a in node.names]
    deps = set()
    for target in targets:
        for mapped, installed in MAPPED.items():  # `import converters` in a script = edgex.converters
            if target == mapped or target.startswith(mapped + "."):
                target = installed + target[len(mapped):]
        parts = target.split(".")
        deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & modules.keys()
    return deps - {name} - {p for p in _parents(name)}


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle in `graph`, as a path that ends where it starts; [] when there is none."""
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> list[str]:
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if state.get(dep) is None and (found := visit(dep, [*stack, dep])):
                return found
        state[name] = 2
        return []

    for name in sorted(graph):
        if state.get(name) is None and (found := visit(name, [name])):
            return found
    return []


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert _packages() <= listed, sorted(_packages() - listed)
    assert listed <= _packages(), sorted(listed - _packages())


def test_no_import_cycle_at_module_level():
    """Imports inside functions are how heavy frameworks load lazily; module-level ones must form no cycle."""
    modules = _modules()
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    cycle = find_cycle(graph)
    assert not cycle, " -> ".join(cycle)


def test_no_import_cycle_even_through_lazy_imports():
    """Imports inside functions load lazily, but a circle through them still ties two modules into one:
    neither can be understood, tested or moved alone."""
    modules = _modules()
    graph = {name: _imported(name, path, modules, module_level=False) for name, path in modules.items()}
    cycle = find_cycle(graph)
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"c2"}, "c2": {"c"}}) == ["c", "c2", "c"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in LONG_ON_PURPOSE}
    assert not long, long


def test_only_runtimes_and_bench_import_the_runner():
    """The runner is one self-contained file; everyone else goes through edgex.runtimes (typed errors there)."""
    modules = _modules()
    users = [name for name, path in modules.items()
             if RUNNER in _imported(name, path, modules, module_level=False)
             and not name.startswith(("edgex.runtimes", "edgex.bench"))]
    assert not users, users


def test_the_top_of_edgex_keeps_only_entry_points_and_leaves():
    top = {p.stem for p in (REPO / "edgex").glob("*.py")}
    assert top <= {"__init__", "__main__", "api", "cli", "errors", "isa", "options", "preprocess", "progress",
                   "telemetry", "versions"}, sorted(top)


def _architecture_table() -> set[str]:
    text = (REPO / "docs" / "architecture.md").read_text()
    return set(re.findall(r"^\|\s*`(edgex(?:\.\w+)*)`\s*\|", text, flags=re.MULTILINE))


def test_architecture_notes_name_every_package_and_only_real_ones():
    table = _architecture_table()
    assert table, "docs/architecture.md has no package table"
    assert table <= _packages(), sorted(table - _packages())
    assert _packages() <= table, sorted(_packages() - table)


def test_tests_import_helpers_not_conftest():
    """conftest.py is pytest's to load; helpers are a normal module (tests/helpers.py)."""
    users = [str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("*.py")
             if re.search(r"^\s*(from conftest import|import conftest)", p.read_text(), flags=re.MULTILINE)]
    assert not users, users


def test_names_users_see_did_not_move_with_the_modules():
    """The module moves rewrote `edgex.lock` once, in the lock file's name: what users and docs see stays."""
    from edgex.artifacts.lock import LOCK_NAME
    from edgex.artifacts.manifest import MANIFEST

    assert (LOCK_NAME, MANIFEST) == (".edgex.lock", "manifest.json")
