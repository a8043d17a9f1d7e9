"""The package layout: one package per feature, a few shared modules, no import circle.

The import graph is read from the source (every `import ivr...` and `from ivr... import`,
also those inside functions: an import moved into a function to dodge a circle is
still a circle in the design).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

IVR = Path(__file__).resolve().parents[2] / "ivr"
#: The only modules directly in ivr/: shared by several features.
SHARED = {"__init__", "ami", "clock", "config", "contract", "ids", "logs"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(IVR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in IVR.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # A name that is a submodule depends on that module; any other name on
                # the module it comes from (for a package: its __init__).
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                           else node.module for a in node.names]
            for target in targets:
                # The deepest module that exists: `from ivr.records import calls` names
                # ivr.records.calls; `from ivr.records.calls import now` names the module.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("ivr") and target != name and target != "ivr":
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_there_is_no_import_circle():
    assert _cycles(_graph()) == []


def test_only_shared_modules_sit_directly_in_the_package():
    loose = {p.stem for p in IVR.glob("*.py")} - SHARED
    assert loose == set(), f"put these in a feature package: {sorted(loose)}"


def test_every_package_says_what_it_is_for():
    for init in IVR.rglob("__init__.py"):
        if "migrations" in init.parts:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(IVR.parent)}: no docstring"
