"""Import a test's generated pipeline module from a file (a fresh module each time, under
its own name in ``sys.modules``, so Ray can pickle its functions by reference to it)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType


def load_module(path: Path, name: str) -> ModuleType:
    """Execute the file at ``path`` as module ``name`` (replacing one of that name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def write_module(path: Path, name: str, source: str) -> ModuleType:
    """Write ``source`` (dedented) to ``path`` and load it as module ``name``."""
    path.write_text(textwrap.dedent(source))
    return load_module(path, name)
