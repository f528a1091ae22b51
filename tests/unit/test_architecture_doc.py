"""docs/ARCHITECTURE.md's layer table is the one generated from pyproject.toml's contracts."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_table_matches_the_contracts() -> None:
    script = runpy.run_path(str(ROOT / "scripts" / "layers_doc.py"))
    assert script["main"](["--check"]) == 0, "run: python scripts/layers_doc.py"


def test_docs_cite_no_file_outside_the_repository() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "../shared/" not in doc.read_text(), doc
