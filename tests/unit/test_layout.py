"""The house as a newcomer reads it: each package of core/ says in its docstring what it may import
and keeps to it, no import cycle between files or packages, a small core root, short modules and
functions (serve/ and console/ too; tests/ and bench/ are not held to it)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO

CORE = REPO / "core"
SOURCES = ("core", "serve", "console")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_ROOT_MODULES = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> Iterator[Path]:
    for top in SOURCES:
        yield from sorted((REPO / top).rglob("*.py"))


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of a module of this repo, at any depth of the file."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this file is in
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            if name.split(".")[0] in SOURCES:
                yield node.lineno, name


def existing_module(name: str) -> str | None:
    """The module a dotted import name lands on (``core.faces.types.Face`` -> ``core.faces.types``)."""
    parts = name.split(".")
    while parts:
        candidate = REPO.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return None


def rule(path: Path) -> list[str]:
    """What a package (its ``__init__``) or a module of the core root may import: the docstring's
    last ``May import: a, b.`` line (``nothing of core.``: none)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    found = re.search(r"^May import: (.*)\.$", doc, re.MULTILINE)
    assert found, f"{path.relative_to(REPO)}: the docstring names no 'May import: ...' line"
    return [] if found.group(1) == "nothing of core" else [name.strip() for name in found.group(1).split(",")]


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


PACKAGES = sorted(p.parent for p in CORE.rglob("__init__.py") if p.parent != CORE)
ROOT_MODULES = sorted(p for p in CORE.glob("*.py") if p.name not in {"__init__.py", "__main__.py"})


def broken_rules(files: Iterator[Path] | list[Path], own: str | None, allowed: list[str]) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in files
        for line, name in imports(path)
        if not (own is not None and under(name, own)) and not any(under(name, prefix) for prefix in allowed)
    ]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_each_package_imports_only_what_its_docstring_allows(package: Path):
    allowed = rule(package / "__init__.py")
    own = module_name(package / "__init__.py")
    broken = broken_rules(package.rglob("*.py"), own, allowed)  # within the package itself: free
    assert not broken, f"{own} may import {allowed}, but:\n" + "\n".join(broken)


@pytest.mark.parametrize("module", ROOT_MODULES, ids=lambda p: p.name)
def test_each_root_module_imports_only_what_its_docstring_allows(module: Path):
    """The root's modules are levels of their own (errors, settings, progress below everything;
    results and the service facade above the packages they name). __main__ is `python -m core`."""
    allowed = rule(module)
    broken = broken_rules([module], None, allowed)
    assert not broken, f"{module_name(module)} may import {allowed}, but:\n" + "\n".join(broken)


def test_every_folder_of_core_is_a_package_with_a_rule():
    folders = {p.parent for p in CORE.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(f for f in folders if not (f / "__init__.py").is_file()) == []


def test_core_imports_neither_serve_nor_console():
    broken = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sorted(CORE.rglob("*.py"))
        for line, name in imports(path)
        if name.split(".")[0] in {"serve", "console"}
    ]
    assert not broken, "\n".join(broken)


def graph(level: int | None) -> dict[str, set[str]]:
    """Module (or package, cut at ``level`` dotted parts) -> what its files import of this repo."""
    edges: dict[str, set[str]] = {}
    for path in source_files():
        source = module_name(path)
        for _, name in imports(path):
            target = existing_module(name)
            if target is None:
                continue
            a, b = (source, target) if level is None else (_cut(source, level), _cut(target, level))
            if a != b:
                edges.setdefault(a, set()).add(b)
    return edges


def _cut(name: str, level: int) -> str:
    """``core.faces.embedders.arcface`` -> ``core.faces`` at level 2, ``core.faces.embedders`` at 3
    (``core.faces.pipeline`` stays itself there); a root module stays itself."""
    return ".".join(name.split(".")[:level])


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


@pytest.mark.parametrize("level", [None, 2, 3], ids=["files", "packages", "subpackages"])
def test_no_import_cycle(level: int | None):
    found = cycle(graph(level))
    assert found is None, " -> ".join(found or [])


def test_the_core_root_holds_only_what_every_package_uses():
    modules = sorted(p.name for p in CORE.glob("*.py"))
    assert len(modules) <= MAX_ROOT_MODULES, modules


def test_modules_and_functions_are_short():
    long = []
    for path in source_files():
        text = path.read_text()
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(REPO)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines")
    assert not long, "\n".join(long)
