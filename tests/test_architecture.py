"""The layer rule of docs/architecture.md, checked on the source: folders carry the layer and imports point down.

Every ``electrodb`` import is read from the syntax tree (module top and function bodies alike), so a lazy import
cannot hide an upward edge. The layers, bottom to top, are :data:`LAYERS`; a module may import its own folder and
any folder of a lower rank, never one of the same rank or above.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "electrodb"

#: Rank of each top-level part of the package (docs/architecture.md, "Who may import whom").
LAYERS: dict[str, int] = {
    "__init__": 0,  # the package face: __version__
    "settings": 0,
    "utils": 0,
    "analysis": 1,
    "systems": 2,
    "documents": 3,
    "models": 3,
    "store": 4,
    "md": 5,
    "builders": 6,
    "flows": 7,  # a segment's convergence check judges the run with the builders' own analysis
    "io": 7,
    "managers": 8,
    "api": 8,
    "cli": 9,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module (or package) an imported dotted name lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(path: Path) -> list[tuple[int, str, str]]:
    """``(line, imported module, imported name or '')`` for every electrodb import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "electrodb":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                target = full if full in MODULES else _resolve(node.module)
                out.append((node.lineno, target, "" if full in MODULES else alias.name))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, _resolve(a.name), "") for a in node.names if a.name.split(".")[0] == "electrodb")
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_top_level_holds_only_the_package_face_settings_and_folders() -> None:
    flat = sorted(p.name for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "settings"))
    assert not flat, f"modules flat at the top of electrodb/ (move each into its layer's folder): {flat}"
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert set(folders) <= set(LAYERS), f"folders without a layer in LAYERS and docs/architecture.md: {folders}"


def test_imports_point_down() -> None:
    upward = []
    for module, path in MODULES.items():
        here = _layer(module)
        assert here in LAYERS, f"{module}: unknown layer {here!r}"
        for line, target, _ in _imports(path):
            there = _layer(target)
            if there != here and LAYERS[there] >= LAYERS[here] and target != "electrodb":
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {here} -> {there} ({target})")
    assert not upward, "imports that do not point down a layer:\n" + "\n".join(upward)


def test_no_import_circle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for _, target, _ in _imports(path):
            if target not in (module, "electrodb") and not module.startswith(target + "."):
                graph[module].add(target)
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_private_names_stay_private() -> None:
    crossing = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}.{name}"
        for module, path in MODULES.items()
        for line, target, name in _imports(path)
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not crossing, "private names imported from another module (make them public or keep them home):\n" + (
        "\n".join(crossing)
    )


def test_package_inits_only_re_export() -> None:
    defining = []
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            # a module-level __getattr__ is a lazy re-export (electrodb.api: the client must not need FastAPI)
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name != "__getattr__":
                defining.append(f"{module}: defines {node.name}")
    assert not defining, "package __init__ files define code (move it into a module):\n" + "\n".join(defining)


def test_the_rule_itself_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker is not vacuous: an analysis module importing the store is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from electrodb.store.stores import get_stores\n")
    (line, target, name), *_ = _imports(bad)
    assert (line, target, name) == (1, "electrodb.store.stores", "get_stores")
    assert LAYERS[_layer(target)] > LAYERS["analysis"]


def test_the_documented_layers_are_the_checked_ones() -> None:
    """docs/architecture.md's "Who may import whom" table gives every folder the rank this test enforces."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for name in re.findall(r"`([a-z_]+)/`", cells[1]):
                documented[name] = int(cells[0])
    folders = {name: rank for name, rank in LAYERS.items() if (PACKAGE / name).is_dir()}
    assert documented == folders
