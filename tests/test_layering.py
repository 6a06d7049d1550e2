"""The package's import graph is acyclic and layered (docs/architecture.md): each module imports only modules of
its own layer or of lower ones.

The graph is read from the source with ``ast``, not by importing: every ``import`` / ``from ... import``
naming ``ijepa_hub``, at module level and inside functions alike (a function-level import is a dependency
that only shows later), with ``from . import x`` resolved to the module ``x`` when it is one. Imports under
``if TYPE_CHECKING:`` are left out: they never run, so they cannot form a cycle at run time, and they only
name types for annotations. Importing a submodule also runs its package's ``__init__``; that implicit edge is
not drawn (with it, every module would depend on the ``ijepa_hub`` facade).
"""
from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ijepa_hub"

# The layers, lowest first (docs/architecture.md, "Layers"): module name patterns relative to the package; ""
# is the package itself (ijepa_hub/__init__.py, the facade). A module's layer is that of the highest layer
# with a pattern matching it, so ``hub.cli`` is an entry point although ``hub.*`` is the hub layer.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["errors", "registry", "version", "limits", "bounds", "yaml_bounded", "precision", "flops", "deprecation"]),
    ("core", ["state_dict", "recipe", "data", "data.*", "models", "models.*"]),
    ("features and checkpoints", ["masks", "features", "reference", "released"]),
    ("engine", ["engine", "engine.*"]),
    ("hub", ["hub", "hub.*"]),
    ("tasks", ["train", "train.*", "finetune", "finetune.*", "eval", "eval.*"]),
    ("deploy", ["deploy"]),
    ("entry points", ["cli_common", "*.cli", "*.__main__", "__main__", ""]),
]

Graph = Mapping[str, set[str]]


def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``root`` (packages by ``__init__``)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                todo.extend(child.orelse)  # the else branch runs
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            todo.append(child)


def import_graph(files: Mapping[str, Path], package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (top-level and function-level, relative imports resolved)."""
    modules = set(files)

    def existing(name: str) -> str | None:  # a name inside a module (a function, a class) -> that module
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        here = module if is_package else module.rpartition(".")[0]
        edges = graph.setdefault(module, set())
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = here
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = ".".join(p for p in (base if node.level else "", node.module or "") if p)
                # ``from pkg import x``: the submodule pkg.x when there is one, else pkg itself
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    found = existing(target)
                    if found and found != module:
                        edges.add(found)
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None when the graph is acyclic (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph.get(start, ())))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def layer_index(layers: list[tuple[str, list[str]]], package: str = PACKAGE) -> Callable[[str], int | None]:
    """``module -> layer number`` (the highest layer with a matching pattern), None for a module in no layer."""

    def index(module: str) -> int | None:
        relative = "" if module == package else module.removeprefix(package + ".")
        for i in range(len(layers) - 1, -1, -1):
            if any(relative == p if not p or "*" not in p else fnmatch.fnmatchcase(relative, p) for p in layers[i][1]):
                return i
        return None

    return index


def upward_imports(graph: Graph, layer_of: Callable[[str], int | None]) -> list[str]:
    """Every edge that imports a higher layer, as ``"a (layer i) -> b (layer j)"``."""
    return [f"{a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})"
            for a in sorted(graph) for b in sorted(graph[a])
            if layer_of(a) is not None and layer_of(b) is not None and layer_of(b) > layer_of(a)]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(module_files(ROOT))


def test_the_import_graph_is_acyclic(graph):
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle through {len(cycle) - 1} modules: {' -> '.join(cycle)}"


def test_every_module_has_a_layer(graph):
    layer_of = layer_index(LAYERS)
    assert [m for m in graph if layer_of(m) is None] == [], "add the module to LAYERS and docs/architecture.md"


def test_modules_import_only_their_own_layer_or_lower_ones(graph):
    assert upward_imports(graph, layer_index(LAYERS)) == []


def test_models_import_neither_the_hub_nor_features(graph):
    models = {m: deps for m, deps in graph.items() if m == "ijepa_hub.models" or m.startswith("ijepa_hub.models.")}
    assert {m: sorted(d for d in deps if d.startswith(("ijepa_hub.hub", "ijepa_hub.features")))
            for m, deps in models.items() if any(d.startswith(("ijepa_hub.hub", "ijepa_hub.features")) for d in deps)} == {}


def test_architecture_doc_lists_the_layers_in_this_order():
    text = (ROOT / "docs" / "architecture.md").read_text()
    positions = [text.find(f"**{name}**") for name, _ in LAYERS]
    assert -1 not in positions and positions == sorted(positions), "docs/architecture.md: one **name** per layer, in order"


# The checker itself, on made-up graphs and a made-up package.

def test_find_cycle_reports_the_modules_of_a_synthetic_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None  # a diamond is no cycle
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_upward_imports_are_reported():
    layers = [("low", ["low", "low.*"]), ("high", ["high", "*.cli"])]
    layer_of = layer_index(layers, package="p")
    assert [layer_of(m) for m in ("p.low", "p.low.x", "p.high", "p.low.cli", "p.other")] == [0, 0, 1, 1, None]
    graph = {"p.low": {"p.high"}, "p.high": {"p.low"}, "p.low.cli": {"p.high"}}
    assert upward_imports(graph, layer_of) == ["p.low (layer 0) -> p.high (layer 1)"]


def test_the_graph_builder_sees_relative_function_level_and_submodule_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from . import a\n",
        "a.py": "def f():\n    from .sub import b\n    return b\n",
        "sub/__init__.py": "",
        "sub/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import f\nfrom .. import c\n",
        "c.py": "import pkg.sub.b as b\nfrom pkg.a import f\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(module_files(tmp_path, "pkg"), "pkg")
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.sub.b"}, "pkg.sub": set(), "pkg.sub.b": {"pkg.c"},
                     "pkg.c": {"pkg.sub.b", "pkg.a"}}
    cycle = find_cycle(graph)  # a -> sub.b -> c -> a, or sub.b -> c -> sub.b: a cycle along the graph's edges
    assert cycle and cycle[0] == cycle[-1] and all(b in graph[a] for a, b in zip(cycle, cycle[1:]))


def test_function_level_imports_of_the_package_are_few():
    """Function-level imports are for optional heavy dependencies and CLI start-up, not for dodging cycles."""
    count = 0
    for path in module_files(ROOT).values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.level or re.match(PACKAGE, inner.module or "")):
                        count += 1
                    elif isinstance(inner, ast.Import) and any(a.name.startswith(PACKAGE) for a in inner.names):
                        count += 1
    assert count <= 40, f"{count} function-level ijepa_hub imports (was 60 before the layering, 38 after)"
