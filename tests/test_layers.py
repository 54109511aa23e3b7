"""The package's layers, read from the source with ``ast`` (nothing is imported or run).

- The library (``rqvae_lib`` outside ``course/``) never imports the course layer.
- No two modules import each other, directly or around a loop.
- No module imports the ``__init__`` of a package it belongs to (an import back up the layers).
- The exercises' answer key is not in the installed package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rqvae_lib.config import REPO_ROOT

PACKAGE = REPO_ROOT / "rqvae_lib"
COURSE = "rqvae_lib.course"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """Every ``rqvae_lib`` module that ``path`` imports, anywhere in the file (functions too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import module` imports pkg.module
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m == "rqvae_lib" or m.startswith("rqvae_lib.")}


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def is_course(name: str) -> bool:
    return name == COURSE or name.startswith(COURSE + ".")


def test_the_graph_is_read_from_the_source() -> None:
    """A guard for the guards below: the parser finds imports that are known to be there."""
    assert "rqvae_lib.quantizer" in GRAPH["rqvae_lib.model"]
    assert "rqvae_lib.retrieval.tokens" in GRAPH["rqvae_lib.retrieval.seq2seq"]
    assert "rqvae_lib.retrieval.experiment" in GRAPH["rqvae_lib.course.retrieval"]
    assert any(is_course(m) for m in MODULES) and len(MODULES) > 30


@pytest.mark.parametrize("name", [m for m in MODULES if not is_course(m)])
def test_the_library_never_imports_the_course(name: str) -> None:
    bad = sorted(m for m in GRAPH[name] if is_course(m))
    assert not bad, f"{name} imports the course layer ({bad}); move that code into the course"


def test_no_import_loops() -> None:
    """No module reaches itself through its imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in GRAPH:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert not loops, f"modules that import each other: {loops}"


@pytest.mark.parametrize("name", list(MODULES))
def test_no_import_back_up_to_an_enclosing_package(name: str) -> None:
    """``rqvae_lib.model`` must not import ``rqvae_lib`` (its ``__init__``), and so on."""
    parents = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))}
    bad = sorted(GRAPH[name] & parents)
    assert not bad, f"{name} imports its enclosing package {bad}; import the module it needs"


def test_the_answer_key_is_not_in_the_package() -> None:
    names = {p.stem for p in PACKAGE.rglob("*.py")}
    assert not names & {"exercise_answers", "exercises_solutions", "solutions"}
    assert (REPO_ROOT / "tests" / "exercise_answers.py").is_file()
    for path in MODULES.values():  # no module of the package reaches for the answers
        tree = ast.parse(path.read_text(), str(path))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if "answer" in m or "solution" in m}, path
