"""No import cycles in cronfile/, counting the imports inside functions.

An import inside a function is still a dependency: it only moves the failure from load
time to call time, and hides the knot from the reader. So every module is parsed with
`ast` and each of its imports, at any depth (module level, inside functions, under
`if TYPE_CHECKING:`), becomes an edge to the cronfile module it names. Relative imports
are resolved against the importing module's package. A cycle fails the test, named
module by module.

Run it directly for the graph's cycles: python tests/test_imports.py
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "cronfile"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of `from {'.' * level}{target} import ...` inside `importer`."""
    if level == 0:
        return target or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The cronfile module that `name` is, or the one it sits in (a function or class)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """Every cronfile module imported anywhere in the file, with the line of the first."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(target: str | None, line: int) -> None:
        if target and target != name and target not in found:
            found[target] = line

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_owner(alias.name, known), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node.level, node.module)
            for alias in node.names:
                # `from . import schedule` names a module; `from .x import f` names x.
                add(_owner(f"{base}.{alias.name}", known) if base else None, node.lineno)
    return found


def graph() -> dict[str, dict[str, int]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def strongly_connected(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of two or more modules (or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(g):
        if start in index:
            continue
        work = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in g:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def a_cycle(g: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """One concrete loop inside a component: a -> b -> ... -> a (shortest from its first)."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g[v]):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def describe(g: dict[str, dict[str, int]], loop: list[str]) -> str:
    steps = [f"{a} (line {g[a][b]}) -> {b}" for a, b in zip(loop, loop[1:], strict=False)]
    return "; ".join(steps)


def cycles() -> list[str]:
    g = graph()
    problems = []
    for comp in strongly_connected(g):
        problems.append(f"import cycle among {', '.join(comp)}: {describe(g, a_cycle(g, comp))}")
    return problems


def test_the_graph_sees_relative_and_function_level_imports() -> None:
    g = graph()
    # __main__ imports cli at module level, relative form.
    assert "cronfile.cli" in g["cronfile.__main__"]
    # cli imports engine only inside its commands: the walk still sees it.
    assert "cronfile.engine" in g["cronfile.cli"]
    # `from . import schedule as sched` names the module, not the package.
    assert "cronfile.schedule" in g["cronfile.cli"]


def test_the_finder_names_a_cycle_it_is_given() -> None:
    g = {"a": {"b": 3}, "b": {"c": 7}, "c": {"a": 1}, "d": {"a": 2}}
    comps = strongly_connected(g)
    assert comps == [["a", "b", "c"]]
    assert describe(g, a_cycle(g, comps[0])) == "a (line 3) -> b; b (line 7) -> c; c (line 1) -> a"


def test_there_are_no_import_cycles() -> None:
    problems = cycles()
    assert not problems, "\n".join(problems)


def test_only_main_imports_the_cli() -> None:
    g = graph()
    importers = sorted(m for m, targets in g.items() if "cronfile.cli" in targets)
    assert importers == ["cronfile.__main__"]


def test_no_module_is_imported_by_its_name_as_a_string() -> None:
    """`importlib.import_module("cronfile.x")` and `__import__` hide an edge from the
    graph above (cli.py once named commands "module:function" that way)."""
    hidden = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if called in ("import_module", "__import__"):
                    hidden.append(f"{name}:{node.lineno}")
    assert not hidden, hidden


if __name__ == "__main__":
    g = graph()
    for comp in strongly_connected(g):
        print(", ".join(comp))
        print("   ", describe(g, a_cycle(g, comp)))
