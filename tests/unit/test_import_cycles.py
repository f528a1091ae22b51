"""No import cycles in airflowdsl/: every import counts (module level, inside functions,
under ``TYPE_CHECKING``). The layer contracts themselves are checked by ``lint-imports``
(pyproject.toml, scripts/test.sh)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import airflowdsl

PACKAGE = Path(airflowdsl.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(node: ast.AST, modules: set[str]) -> list[str]:
    """The airflowdsl modules one import statement loads (the longest known prefix)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = [f"{node.module}.{a.name}" for a in node.names]
    found = []
    for name in names:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in modules:
                found.append(candidate)
                break
    return found


def import_graph() -> nx.DiGraph:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _imported(node, set(files)):
                if target != module:
                    graph.add_edge(module, target)
    return graph


def test_the_scan_sees_function_level_and_type_checking_imports() -> None:
    graph = import_graph()
    # CompiledPipeline.run imports the executor inside the method
    assert graph.has_edge("airflowdsl.dsl.compile", "airflowdsl.runtime.executor")
    # air/callbacks.py imports Checkpoint under TYPE_CHECKING only
    assert graph.has_edge("airflowdsl.air.callbacks", "airflowdsl.air.checkpoint")


def test_no_import_cycles() -> None:
    cycles = sorted(" -> ".join([*c, c[0]]) for c in nx.simple_cycles(import_graph()))
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)
