"""The package's import graph has no cycle.

Every module of ``ecnn_pyg`` is parsed with :mod:`ast` (nothing is imported)
and every import statement counts, at module level and inside functions
(lazy imports only postpone a cycle), except those under ``if TYPE_CHECKING:``.
Nodes are modules; a package's ``__init__`` is the node of the package's name
(``ecnn_pyg``, ``ecnn_pyg.nn``), so its re-exports are its own edges. Edges:

* ``import ecnn_pyg.a.b`` -> ``ecnn_pyg.a.b``;
* ``from .a import b`` -> ``pkg.a.b`` if that is a module, else ``pkg.a``;
* ``from . import x`` -> the submodule ``pkg.x`` if there is one, else the
  package ``pkg`` itself (``from . import __version__`` depends on ``__init__``);
* ``importlib.import_module("ecnn_pyg.x")`` with a literal name -> ``ecnn_pyg.x``.

Python initialising a parent package before its submodule is not an edge
(it would make every module depend on ``ecnn_pyg/__init__.py``).
"""
import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

import ecnn_pyg

ROOT = Path(ecnn_pyg.__file__).resolve().parent


def package_modules() -> Dict[str, Path]:
    """``{dotted module name: file}``; a package's ``__init__.py`` has the package's name."""
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _type_checking_blocks(tree) -> Set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (not imported at run time)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else \
                test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    return skip


def imports_of(name: str, path: Path, mods: Dict[str, Path]) -> Set[str]:
    """The package modules that module ``name`` (file ``path``) imports."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = _type_checking_blocks(tree)
    out = set()

    def add(target):
        # the longest prefix of target that is a package module
        while target and target not in mods:
            target = target.rpartition(".")[0]
        if target:
            out.add(target)

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ecnn_pyg":
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "ecnn_pyg":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                add(sub if sub in mods else module)
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                and (getattr(node.func, "attr", None) == "import_module"
                     or getattr(node.func, "id", None) == "import_module") \
                and node.args[0].value.startswith("ecnn_pyg"):
            add(node.args[0].value)
    out.discard(name)
    return out


def import_graph() -> Dict[str, Set[str]]:
    """``{module: modules it imports}`` over the whole package."""
    mods = package_modules()
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected component of more than one node."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []
    counter = [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    cycles = []
    for comp in comps:
        start = min(comp)
        # shortest path from start back to start inside the component (BFS)
        prev, frontier, found = {start: None}, [start], None
        while frontier and found is None:
            nxt = []
            for u in frontier:
                for w in sorted(graph[u] & comp):
                    if w == start:
                        found = u
                        break
                    if w not in prev:
                        prev[w] = u
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path, u = [start], found
        while u is not None and u != start:
            path.insert(1, u)
            u = prev[u]
        cycles.append(path + [start])
    return cycles


def test_graph_sees_the_package():
    graph = import_graph()
    assert {"ecnn_pyg", "ecnn_pyg.lattice", "ecnn_pyg.nn", "ecnn_pyg.cli"} <= set(graph)
    assert "ecnn_pyg._version" in graph["ecnn_pyg"]               # from ._version import ...
    assert "ecnn_pyg.lattice" in graph["ecnn_pyg.graph"]
    assert "ecnn_pyg.spins" in graph["ecnn_pyg.dynamics"]


def test_cycle_finder_reports_cycles():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": {"e"}}
    cycles = sorted(find_cycles(g))
    assert cycles == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_edge_rules(tmp_path):
    pkg = tmp_path / "ecnn_pyg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0'\nfrom .a import f\n")
    (pkg / "a.py").write_text("from . import __version__\nfrom .sub import g\n"
                              "def f():\n    from .sub import mod\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import b\n")
    (pkg / "sub" / "mod.py").write_text("import importlib\n"
                                        "importlib.import_module('ecnn_pyg.b')\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from .a import f\n")
    mods = {}
    for path in sorted(pkg.rglob("*.py")):
        parts = list(path.relative_to(tmp_path).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    got = {name: imports_of(name, path, mods) for name, path in mods.items()}
    assert got == {"ecnn_pyg": {"ecnn_pyg.a"},
                   "ecnn_pyg.a": {"ecnn_pyg", "ecnn_pyg.sub", "ecnn_pyg.sub.mod"},
                   "ecnn_pyg.sub": {"ecnn_pyg.b"}, "ecnn_pyg.sub.mod": {"ecnn_pyg.b"},
                   "ecnn_pyg.b": set()}
    assert find_cycles(got) == [["ecnn_pyg", "ecnn_pyg.a", "ecnn_pyg"]]


def _describe(cycles):
    return "import cycles in ecnn_pyg (one per strongly connected component):\n" + \
        "\n".join("  " + " -> ".join(c) for c in cycles)


def test_import_graph_has_no_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, _describe(cycles)


def test_no_cycle_through_the_physics_modules():
    # the part of the package below training and model loading is acyclic already
    cycles = find_cycles(import_graph())
    below = {"ecnn_pyg.lattice", "ecnn_pyg.graph", "ecnn_pyg.spins", "ecnn_pyg.ed",
             "ecnn_pyg.dynamics", "ecnn_pyg.simulate", "ecnn_pyg.generate", "ecnn_pyg.datasets",
             "ecnn_pyg.observables", "ecnn_pyg.plot", "ecnn_pyg.metrics", "ecnn_pyg.baseline",
             "ecnn_pyg.testing", "ecnn_pyg.augment", "ecnn_pyg.keys", "ecnn_pyg.runtime",
             "ecnn_pyg._version"}
    bad = [c for c in cycles if below & set(c)]
    assert not bad, _describe(bad)
