"""No import circles among the project's modules, in ``framework/`` or ``bench/``.

Every import counts, wherever it stands (top level, inside a function, under TYPE_CHECKING): a
lazy or type-only import still ties two files together, and a circle of them means neither can
be read, tested or replaced alone. A package's ``__init__.py`` re-exporting its modules is not
an arrow (``from .module import name`` there is the package's table of contents).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, dict[str, set[str]]]:
    """``{module: {module it imports: the names that tie them}}`` over the packages' files;
    imports of a package's ``__init__`` (not of one of its modules) are left out."""
    files = {_module(p, root): p for package in packages for p in (root / package).rglob("*.py")}
    graph: dict[str, dict[str, set[str]]] = {module: {} for module in files}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [(alias.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1] if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                targets = [(f"{target}.{a.name}", a.name) for a in node.names]
                targets += [(target, a.name) for a in node.names]
            else:
                continue
            for target, name in targets:
                parts = target.split(".")
                while parts and ".".join(parts) not in files:  # the longest project module named
                    parts.pop()
                dest = ".".join(parts)
                if dest and dest != module and files[dest].name != "__init__.py":
                    graph[module].setdefault(dest, set()).add(name)
    return graph


def circles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(graph: dict[str, dict[str, set[str]]], circle: list[str]) -> str:
    return "; ".join(
        f"{a} -> {b}: {', '.join(sorted(graph[a][b]))}"
        for a in circle
        for b in sorted(graph[a])
        if b in circle
    )


@pytest.mark.parametrize("package", ["framework", "bench"])
def test_no_import_circles_in_the_project(package):
    graph = import_graph(ROOT, ("framework", "bench"))
    mine = [c for c in circles(graph) if any(m.partition(".")[0] == package for m in c)]
    assert not mine, "import circles: " + " | ".join(describe(graph, c) for c in mine)


def test_the_check_finds_a_lazy_and_a_type_only_circle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .a import A\nfrom .b import B\n")
    (package / "a.py").write_text("class A:\n    def f(self):\n        from .b import B\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\nB = 1\n"
    )
    (package / "c.py").write_text("from . import a\n")  # an arrow, not a circle
    graph = import_graph(tmp_path, ("pkg",))
    assert circles(graph) == [["pkg.a", "pkg.b"]]
    assert describe(graph, ["pkg.a", "pkg.b"]) == "pkg.a -> pkg.b: B; pkg.b -> pkg.a: A"
