"""Which version of a library a step's code references: recorded per step so ``explain``
can say that a library changed since a result was stored. (``importlib.metadata``'s
``packages_distributions()`` costs ~0.4 s, too much for a cached rerun: the import name
is tried as the distribution name, then the module's ``__version__``.)"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1024)
def version_of(module: str) -> tuple[str, str] | None:
    """``(name, version)`` of the top-level package providing ``module``, or None (the
    standard library, builtins, airflowdsl itself, or no version found)."""
    top = module.split(".")[0]
    if not top or top.startswith("_") or top in sys.stdlib_module_names or top in (
            "builtins", "airflowdsl"):
        return None
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(top)
    except (PackageNotFoundError, ValueError):
        found = getattr(sys.modules.get(top), "__version__", None)
        return (top, found) if isinstance(found, str) else None
    return top, _header_version(dist) or dist.version


def _header_version(dist: Any) -> str | None:
    """The ``Version`` field of the distribution's core metadata, read from its header
    lines only (what ``importlib.metadata.version`` returns, without importing ``email``
    and parsing the whole file: ~1.5 ms for numpy's, once per process). None when the
    header has no such line (the caller then asks ``importlib.metadata``)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line:  # the headers end at the first blank line
            break
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "version":
            return value.strip() or None
    return None
