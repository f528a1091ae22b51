"""Which version of a library a step's code references: recorded per step so ``explain``
can say that a library changed since a result was stored. (``importlib.metadata``'s
``packages_distributions()`` costs ~0.4 s, too much for a cached rerun: the import name
is tried as the distribution name, then the module's ``__version__``.)"""

from __future__ import annotations

import sys
from functools import lru_cache


@lru_cache(maxsize=1024)
def version_of(module: str) -> tuple[str, str] | None:
    """``(name, version)`` of the top-level package providing ``module``, or None (the
    standard library, builtins, airflowdsl itself, or no version found)."""
    top = module.split(".")[0]
    if not top or top.startswith("_") or top in sys.stdlib_module_names or top in (
            "builtins", "airflowdsl"):
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return top, version(top)
    except (PackageNotFoundError, ValueError):
        found = getattr(sys.modules.get(top), "__version__", None)
        return (top, found) if isinstance(found, str) else None
