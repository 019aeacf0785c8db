"""The package's imports go one way: no import cycle, and no layer importing a layer above it.

Layers, bottom to top (a module may import its own layer and the layers below):

    utils -> audio / text / nn -> data / metrics / decoding -> models -> recipes -> training
    -> tasks -> inference -> evaluation -> cli -> the ``speechattn`` facade (and deprecated shims)

Every module must have a layer of its own: the ``speechattn`` entry of :data:`LAYERS` is the layer
of the facade module ``speechattn`` (its ``__init__``) alone, not a prefix that would give every
new subpackage the top layer; the deprecated shims are listed one by one.

Every ``import`` counts, at module level or inside a function (a lazy import is still a
dependency), except those under ``if TYPE_CHECKING:`` (annotations only; they never run). Edges
to the root package ``speechattn`` are not counted: its ``__init__`` imports nothing when it
runs (the public names are looked up on first use), and ``__version__`` lives there.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import speechattn

PACKAGE_DIR = Path(speechattn.__file__).parent

#: The facade module: its entry in LAYERS is no prefix, it places ``speechattn/__init__.py`` alone.
FACADE = "speechattn"

#: (module prefix, layer); the longest matching prefix wins (see :func:`layer_of`).
LAYERS = {
    "speechattn.utils": 0,
    "speechattn.audio": 1,
    "speechattn.text": 1,
    "speechattn.nn": 1,
    "speechattn.data": 2,
    "speechattn.metrics": 2,
    "speechattn.decoding": 2,
    "speechattn.models": 3,
    "speechattn.recipes": 4,
    "speechattn.training": 5,
    "speechattn.tasks": 6,
    "speechattn.inference": 7,
    "speechattn.evaluation": 8,
    "speechattn.cli": 9,
    "speechattn.labeler": 10,  # deprecated shim of speechattn.inference.labeler
    "speechattn.transcriber": 10,  # deprecated shim of speechattn.inference.transcriber
    FACADE: 10,  # speechattn/__init__.py alone
}

Edge = tuple[str, str, str]  # (importer, imported, "file:line")


def package_modules(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = ["speechattn", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped |= {id(n) for n in ast.walk(child)}
    return skipped


def import_edges(modules: dict[str, Path], root: Path = PACKAGE_DIR) -> list[Edge]:
    """Every import between two modules of the package (resolved to the deepest module named)."""
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skipped = _type_checking_nodes(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target not in ("speechattn", name):
                    edges.append((name, target, f"{path.relative_to(root.parent)}:{node.lineno}"))
    return edges


def layer_of(module: str) -> int | None:
    """The layer of ``module``: that of its longest prefix in :data:`LAYERS` (the facade entry
    matches the module ``speechattn`` only); None when no entry matches."""
    prefixes = [p for p in LAYERS if module == p or (p != FACADE and module.startswith(p + "."))]
    return LAYERS[max(prefixes, key=len)] if prefixes else None


def modules_without_a_layer(modules: dict[str, Path]) -> list[str]:
    """The modules no entry of :data:`LAYERS` places (sorted)."""
    return sorted(m for m in modules if layer_of(m) is None)


def find_cycle(edges: list[Edge]) -> list[str] | None:
    """One import cycle (its modules, first repeated last), or None."""
    graph = defaultdict(set)
    for a, b, _ in edges:
        graph[a].add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(package_modules())


def test_every_module_has_a_layer():
    missing = modules_without_a_layer(package_modules())
    assert not missing, f"modules without a layer (add their prefix to LAYERS): {missing}"


def test_a_module_without_a_layer_is_reported(tmp_path):
    """The checker itself: a planted subpackage and a planted top-level module have no layer (the
    facade's entry does not cover them), while the facade, the shims and a module under a listed
    prefix have theirs."""
    pkg = tmp_path / "speechattn"
    (pkg / "serve").mkdir(parents=True)
    (pkg / "nn").mkdir()
    for rel in ("__init__.py", "labeler.py", "transcriber.py", "nn/__init__.py", "nn/new_layer.py",
                "serve/__init__.py", "serve/app.py", "helpers.py"):
        (pkg / rel).write_text("")
    planted = package_modules(pkg)
    assert modules_without_a_layer(planted) == ["speechattn.helpers", "speechattn.serve", "speechattn.serve.app"]
    assert [layer_of(m) for m in ("speechattn", "speechattn.labeler", "speechattn.transcriber",
                                  "speechattn.nn.new_layer")] == [10, 10, 10, 1]
    assert layer_of("speechattn.labeler_v2") is None  # a prefix matches whole name parts only


def test_no_import_cycle_inside_the_package(edges):
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_layer_imports_a_layer_above_it(edges):
    # a module without a layer fails test_every_module_has_a_layer; its edges cannot be ordered
    upward = [f"{where}: {a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
              for a, b, where in edges if None not in (layer_of(a), layer_of(b)) and layer_of(b) > layer_of(a)]
    assert not upward, "\n".join(upward)


def test_the_checks_catch_cycles_and_inversions(tmp_path):
    """The checker itself: a planted cycle (also through a lazy import) and an upward import are found."""
    pkg = tmp_path / "speechattn"
    (pkg / "nn").mkdir(parents=True)
    (pkg / "training").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nn" / "__init__.py").write_text("")
    (pkg / "training" / "__init__.py").write_text("")
    (pkg / "nn" / "a.py").write_text("from speechattn.nn.b import x\n")
    (pkg / "nn" / "b.py").write_text("def f():\n    from speechattn.nn import a\n")
    (pkg / "nn" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import speechattn.training.t\n")
    (pkg / "nn" / "d.py").write_text("from ..training import t\n")
    (pkg / "training" / "t.py").write_text("")
    planted = import_edges(package_modules(pkg), pkg)
    assert find_cycle(planted) in (["speechattn.nn.a", "speechattn.nn.b", "speechattn.nn.a"],
                                   ["speechattn.nn.b", "speechattn.nn.a", "speechattn.nn.b"])
    assert [(a, b) for a, b, _ in planted if layer_of(b) > layer_of(a)] == [("speechattn.nn.d", "speechattn.training.t")]
