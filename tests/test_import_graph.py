"""No import cycles in agent/, engine/, tools/ or prompts/: a module never imports one that
(transitively) imports it back. The graph is read with `ast`, nothing is imported: every import
statement counts (module level, inside functions, under `if TYPE_CHECKING:`), relative imports
are resolved, and `from X import name` counts as importing X.name when that is a module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "engine", "tools", "prompts")


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every .py file of the packages (a package is its
    __init__.py)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _known(name: str, modules: dict) -> str | None:
    """`name` if it is one of our modules, else its longest prefix that is; None outside."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, module: str, is_pkg: bool, modules: dict) -> list[str]:
    """The modules of ours one import statement imports."""
    if isinstance(node, ast.Import):
        return [m for a in node.names if (m := _known(a.name, modules))]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: from the module's package, up level - 1
        pkg = module.split(".") if is_pkg else module.split(".")[:-1]
        pkg = pkg[:len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, *([base] if base else [])])
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        target = sub if sub in modules else _known(base, modules)
        if target:
            out.append(target)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports (itself excluded)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_pkg = path.name == "__init__.py"
        graph[name] = {t for node in ast.walk(tree)
                       for t in _targets(node, name, is_pkg, modules) if t != name}
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other (a module is in one when it reaches itself);
    a few hundred modules, so reachability from each is cheap enough."""
    reach = {m: _reach(graph, m) for m in graph}
    groups = {frozenset(n for n in reach[m] if m in reach[n]) for m in graph if m in reach[m]}
    return sorted(sorted(g) for g in groups)


def _cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One concrete cycle through the component's first module (breadth first: a shortest)."""
    members, start = set(comp), comp[0]
    came: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in came:
                    came[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def cycles(graph: dict[str, set[str]], package: str) -> list[list[str]]:
    """The import cycles that pass through `package`, each as a path a -> ... -> a."""
    return [_cycle(graph, c) for c in _components(graph)
            if any(m == package or m.startswith(package + ".") for m in c)]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_every_kind_of_import(graph):
    assert "engine.chat.dsml" in graph["engine.chat.render"]  # from engine.chat import dsml
    assert "engine.chat.tokenizer" in graph["engine.chat.render"]  # under TYPE_CHECKING
    assert "engine.weights.loader" in graph["engine.api"]  # inside a function


def test_relative_imports_resolve_and_submodules_count():
    modules = dict.fromkeys(["p", "p.a", "p.b", "p.sub", "p.sub.c"])
    assert _targets(ast.parse("from ..b import x").body[0], "p.sub.c", False, modules) == ["p.b"]
    assert _targets(ast.parse("from . import c").body[0], "p.sub", True, modules) == ["p.sub.c"]
    assert _targets(ast.parse("from p import a, x").body[0], "p.b", False, modules) == \
        ["p.a", "p"]


def test_a_cycle_is_reported_as_a_path():
    g = {"p.a": {"p.b"}, "p.b": {"p.c", "q.x"}, "p.c": {"p.a"}, "q.x": set(), "q.y": {"p.a"}}
    assert cycles(g, "p") == [["p.a", "p.b", "p.c", "p.a"]] and cycles(g, "q") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(graph, package):
    found = cycles(graph, package)
    assert not found, f"import cycles through {package}/:\n" + "\n".join(
        " -> ".join(c) for c in found)
