"""The one atomic write: all or nothing, no temp file left, used by every writer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflowdsl
from airflowdsl.fileio import atomic_write_bytes


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.bin"
    atomic_write_bytes(target, b"one", make_parents=True)
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["b.bin"]


def test_missing_parent_without_make_parents_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "x", b"data")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_no_other_module_renames_files_into_place() -> None:
    """``os.replace`` of a file is done by fileio only (checkpoint directories excepted)."""
    package = Path(airflowdsl.__file__).parent
    allowed = {"fileio.py", "air/checkpoint.py"}  # persist_directory: a directory rename
    offenders = []
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("replace", "rename")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
                    and rel not in allowed):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
