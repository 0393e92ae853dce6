"""The layers of ARCHITECTURE.md, enforced over every import the package makes.

Every ``import`` counts: at module level, inside functions and under ``TYPE_CHECKING``
(a type-only import still ties two modules together for the reader, the type checker and
the next refactoring). The rules:

1. no circle between modules;
2. a package imports only from lower layers (or from itself);
3. Prefect-path faces hand names on and define nothing; no implementation imports one;
4. the pure decision code imports no I/O, and reaches only the schema and the exceptions.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "headwater"

LAYERS: list[set[str]] = [
    {"ids", "exceptions", "durations"},
    {"settings"},
    {"events"},
    {"engine", "lifecycle", "notifications"},
    {"storage"},
    {"blocks", "artifacts", "concurrency", "client"},
    {"deployments"},
    {"automations"},
    {"runner"},
    {"server"},
    {"headwater", "prefect_names"},  # the public API, the wiring of the layers, Prefect's names
    {"cli"},
    {"__main__", "demo"},
]
"""Bottom to top. Packages in one layer do not import each other."""

FACES = {
    "headwater.cache_policies",
    "headwater.context",
    "headwater.filesystems",
    "headwater.flows",
    "headwater.futures",
    "headwater.locking",
    "headwater.logging",
    "headwater.results",
    "headwater.runtime",
    "headwater.runtime.deployment",
    "headwater.runtime.flow_run",
    "headwater.runtime.task_run",
    "headwater.serializers",
    "headwater.states",
    "headwater.task_runners",
    "headwater.tasks",
    "headwater.transactions",
    "headwater.variables",
    "headwater.artifacts",
    "headwater.blocks.core",
    "headwater.blocks.system",
    "headwater.blocks.notifications",
    "headwater.concurrency.sync",
    "headwater.concurrency.asyncio",
    "headwater.deployments",
    "headwater.events",
    "headwater.schedules",
    "headwater.events.actions",
    "headwater.events.schemas",
    "headwater.events.schemas.automations",
    "headwater.events.schemas.deployment_triggers",
    "headwater.events.schemas.events",
    "headwater.client.schemas",
    "headwater.client.schemas.objects",
    "headwater.client.schemas.schedules",
    "headwater.utilities",
    "headwater.utilities.annotations",
}
"""Prefect's import paths whose implementation lives elsewhere (README, migration table)."""

PURE = {
    "headwater.automations.actions_model",
    "headwater.automations.checkpoint",
    "headwater.automations.index",
    "headwater.automations.matching",
    "headwater.automations.model",
    "headwater.automations.templates",
    "headwater.automations.triggers",
    "headwater.deployments.model",
    "headwater.deployments.schedules",
    "headwater.engine.retries",
    "headwater.events.aliases",
}
"""Decision code: plain functions of their inputs (STYLE.md rule 3)."""

PURE_MAY_REACH = {
    "headwater.durations",
    "headwater.events.aliases",
    "headwater.events.schema",
    "headwater.exceptions",
    "headwater.ids",
}
IO_MODULES = {
    "aiosqlite",
    "anyio",
    "asyncio",
    "httpx",
    "os",
    "requests",
    "socket",
    "sqlite3",
    "subprocess",
    "threading",
    "time",
    "websockets",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every module name ``name`` imports (absolute, as written)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}"  # a submodule, or a name in ``base``
            yield base


def _resolve(target: str) -> str | None:
    known = modules()
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


@cache
def graph() -> dict[str, frozenset[str]]:
    edges = {}
    for name, path in modules().items():
        targets = {_resolve(target) for target in _imported(name, path)}
        targets.discard(None)
        targets.discard(name)
        # "from headwater.x import y" names the package too; keep the most precise target
        precise = {t for t in targets if t is not None}
        for target in list(precise):
            nested = any(other.startswith(f"{target}.") for other in precise)
            if nested and not _names_taken_from(name, target):
                precise.discard(target)
        edges[name] = frozenset(precise)
    return edges


def _names_taken_from(name: str, package: str) -> bool:
    """Whether ``name`` takes a non-module name from ``package`` itself."""
    path = modules()[name]
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == package
            and not node.level
            and any(f"{package}.{alias.name}" not in modules() for alias in node.names)
        ):
            return True
    return False


def _third_party(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
    return found - {"headwater", "__future__"}


def _package(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "headwater"


def _layer(name: str) -> int:
    package = _package(name)
    for index, layer in enumerate(LAYERS):
        if package in layer:
            return index
    raise AssertionError(f"{name} belongs to no layer of ARCHITECTURE.md; add its package")


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_is_read() -> None:
    edges = graph()
    assert len(edges) > 150
    assert "headwater.events.bus" in edges["headwater.engine.runs"]
    # type-only imports count
    assert "headwater.engine.flow_definition" in edges["headwater.engine.context"]


def test_no_module_imports_another_that_imports_it_back() -> None:
    cycles = _cycles()
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_every_package_sits_on_a_layer_of_architecture_md() -> None:
    for name in modules():
        if name not in FACES:
            _layer(name)


def test_imports_only_point_down() -> None:
    upward = []
    for name, targets in graph().items():
        if name in FACES:
            continue
        for target in targets:
            if target in FACES or _package(target) == _package(name):
                continue
            if _layer(target) >= _layer(name):
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(upward))


def test_faces_only_hand_names_on_and_nothing_imports_them() -> None:
    for face in sorted(FACES):
        tree = ast.parse(modules()[face].read_text())
        for node in tree.body:
            allowed = (ast.Import, ast.ImportFrom, ast.Expr)  # Expr: the docstring
            is_all = isinstance(node, ast.Assign) and [
                getattr(t, "id", None) for t in node.targets
            ] == ["__all__"]
            assert isinstance(node, allowed) or is_all, (
                f"{face} defines something at line {node.lineno}; "
                "a face only re-exports (move the code to the implementation)"
            )
    importers = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        if name not in FACES and name != "headwater"
        for target in targets & FACES
    ]
    assert not importers, "implementation importing a Prefect-path face:\n" + "\n".join(importers)


@pytest.mark.parametrize("module", sorted(PURE))
def test_decision_code_does_no_io(module: str) -> None:
    io = _third_party(modules()[module]) & IO_MODULES
    assert not io, f"{module} is decision code but imports {sorted(io)}"
    reached = set()
    todo = [module]
    while todo:
        for target in graph()[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    outside = sorted(reached - PURE - PURE_MAY_REACH)
    assert not outside, f"{module} reaches beyond the pure core: {outside}"


if __name__ == "__main__":  # a listing for ARCHITECTURE.md: package -> packages it imports
    by_package: dict[str, set[str]] = {}
    for name, targets in graph().items():
        for target in targets:
            if _package(target) != _package(name):
                by_package.setdefault(_package(name), set()).add(_package(target))
    for package in sorted(by_package):
        sys.stdout.write(f"{package} -> {', '.join(sorted(by_package[package]))}\n")


def test_test_modules_have_unique_names() -> None:
    # pytest imports test files by basename (no __init__.py): two of a name break collection
    tests = Path(__file__).resolve().parent
    names: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(tests)))
    repeated = {name: where for name, where in names.items() if len(where) > 1}
    assert not repeated, f"test files sharing a name: {repeated}"
