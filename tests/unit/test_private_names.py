"""No module imports another airflowdsl module's private (``_name``) definitions: what is
shared across modules is public (private *modules* such as ``cli/_load.py`` are fine)."""

from __future__ import annotations

import ast
from pathlib import Path

import airflowdsl

PACKAGE = Path(airflowdsl.__file__).parent


def test_no_private_names_imported_across_modules() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.split(".")[0] == "airflowdsl"):
                found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} "
                          f"{node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []
