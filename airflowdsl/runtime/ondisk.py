"""Is the code that runs the code on disk? (A long-lived process keeps running the
module it imported while its file is edited; a key computed from the new source
would then store the old code's result under the new code's key.)

The file is compiled again (cached per path, mtime and size) and the running function's
code object, line numbers removed, must be one of the code objects it yields. Comment
and blank-line edits do not count; any change to what executes (or to a docstring) does.
"""

from __future__ import annotations

import os
import types
from functools import lru_cache


def _strip(code: types.CodeType) -> types.CodeType:
    consts = tuple(_strip(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_firstlineno=1, co_linetable=b"", co_consts=consts)


def _walk(code: types.CodeType) -> list[types.CodeType]:
    out = [code]
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out.extend(_walk(c))
    return out


@lru_cache(maxsize=256)
def _compiled(path: str, mtime_ns: int, size: int) -> frozenset[types.CodeType] | None:
    try:
        with open(path, "rb") as f:
            module = compile(f.read(), path, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return None
    return frozenset(_strip(c) for c in _walk(module))


def matches_disk(fn: types.FunctionType) -> bool:
    """False when ``fn``'s file exists and no longer contains the code ``fn`` runs.

    Code without a file (``<string>``, notebook cells, ``python -c``) is what it is: True.
    """
    path = fn.__code__.co_filename
    if not path or path.startswith("<"):
        return True
    try:
        st = os.stat(path)
    except OSError:
        return True
    codes = _compiled(path, st.st_mtime_ns, st.st_size)
    return codes is not None and _strip(fn.__code__) in codes
