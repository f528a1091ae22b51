"""Is the code that runs the code on disk? (A long-lived process keeps running the
module it imported while its file is edited; a key computed from the new source
would then store the old code's result under the new code's key.)

The file is compiled again (cached per path, mtime and size) and the running function's
code object, line numbers removed, must be one of the code objects it yields. Comment
and blank-line edits do not count; any change to what executes (or to a docstring) does.
Only the function's own lines are compiled first (``def_source``): where they give its
code object the answer is yes; anything else is decided by compiling the whole file.
"""

from __future__ import annotations
import __future__

import functools
import operator
import os
import types
from functools import lru_cache

#: the ``from __future__`` flags a code object carries in ``co_flags`` (its file's)
_FUTURE = functools.reduce(operator.or_, (getattr(__future__, name).compiler_flag
                                           for name in __future__.all_feature_names))


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


def def_source(source: bytes, code: types.CodeType) -> tuple[bytes, bool] | None:
    """The lines of ``source`` holding the whole ``def`` that compiled to ``code``, from
    its first decorator to its last instruction's end, and whether they are indented
    (then parse them under an ``if 1:`` line, so nothing inside them changes). None when
    that is not certain: the line after them is indented deeper (the body goes on with
    statements that compile to nothing, or the file changed), a coding cookie or BOM,
    no line information. Same text as the def's node in the whole file's syntax tree."""
    if source.startswith(b"\xef\xbb\xbf"):
        return None
    lines = source.splitlines(keepends=True)
    if any(b"coding" in line for line in lines[:2]):
        return None
    first, last = code.co_firstlineno, 0
    for c in _walk(code):
        for pos in c.co_positions():
            if pos[1] is not None and pos[1] > last:
                last = pos[1]
    if not 1 <= first <= last <= len(lines):
        return None
    head = lines[first - 1]
    indent = len(head) - len(head.lstrip(b" \t"))
    for line in lines[last:]:  # the next line with code must not be deeper than the def
        text = line.strip()
        if text and not text.startswith(b"#"):
            if len(line) - len(line.lstrip(b" \t")) > indent:
                return None
            break
    return b"".join(lines[first - 1:last]), indent > 0


@lru_cache(maxsize=1024)
def _segment_has(path: str, mtime_ns: int, size: int, code: types.CodeType,
                 imported: tuple[str, ...]) -> bool:
    """Whether ``code``'s lines of ``path`` (``def_source``) are a module-level def that
    compiles to it. Alone, such a def compiles as in its file given the file's
    ``from __future__`` flags (the running code's) and which names its file imports
    (``imported``, assumed from the globals: an imported base of ``name.attr(...)``
    gets LOAD_ATTR instead of LOAD_METHOD, the same call either way). Indented defs
    (methods, closures, defs under ``if``/``try``) are left to the whole file."""
    try:
        with open(path, "rb") as f:
            found = def_source(f.read(), code)
        if found is None or found[1]:
            return False
        head = f"import {', '.join(imported)}\n".encode() if imported else b""
        module = compile(head + found[0], path, "exec", flags=code.co_flags & _FUTURE,
                         dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return False
    return _strip(code) in {_strip(c) for c in _walk(module)}


def _imported(fn: types.FunctionType) -> tuple[str, ...]:
    """Globals ``fn``'s code names that its module most likely bound by an import: modules,
    and classes/functions defined in another module. A wrong guess only makes
    ``_segment_has`` say no (the whole file decides)."""
    glb = fn.__globals__
    names = {n for c in _walk(fn.__code__) for n in c.co_names if n in glb}
    return tuple(sorted(n for n in names if _from_elsewhere(glb[n], fn.__module__)))


def _from_elsewhere(value: object, module: str) -> bool:
    if isinstance(value, types.ModuleType):
        return True
    try:  # any object: a proxy's ``__module__`` may raise
        other = getattr(value, "__module__", None)
        return isinstance(other, str) and other != module and callable(value)
    except Exception:  # noqa: BLE001 - only a guess
        return False


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
    if _segment_has(path, st.st_mtime_ns, st.st_size, fn.__code__, _imported(fn)):
        return True  # its own lines compile to it; anything else: the whole file decides
    codes = _compiled(path, st.st_mtime_ns, st.st_size)
    return codes is not None and _strip(fn.__code__) in codes
