"""Code fingerprints and canonical value hashing.

A step's code fingerprint is the normalized syntax tree (comments, docstrings
and decorators stripped) of its function plus, transitively, every function
and class from the user's own modules that it references. Library code
(stdlib, site-packages, airflowdsl itself) is not fingerprinted: upgrading a
library does not invalidate the cache (pin a ``version=`` for that).

Parameter values are hashed through :func:`canonical`, a
``functools.singledispatch`` function (Hamilton style): register a type to
teach the cache how to hash it.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from airflowdsl.runtime.canonical import canonical, digest

__all__ = ["canonical", "code_fingerprint", "digest", "is_project_local", "project_modules"]

_LIB_PREFIXES = tuple(
    os.path.realpath(p)
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
)
_CONSTANT_TYPES = (bool, int, float, str, bytes, type(None))


@lru_cache(maxsize=4096)
def _module_is_local(modname: str) -> bool:
    if modname in ("builtins", "airflowdsl") or modname.startswith("airflowdsl."):
        return False
    mod = sys.modules.get(modname)
    if mod is None:
        return False
    if modname == "__main__":
        return True
    path = getattr(mod, "__file__", None)
    if not path:
        return False
    real = os.path.realpath(path)
    return not (real.startswith(_LIB_PREFIXES) or "site-packages" in real or "dist-packages" in real)


def is_project_local(obj: Any) -> bool:
    """True for functions/classes/modules defined in the user's own code."""
    if isinstance(obj, types.ModuleType):
        return _module_is_local(obj.__name__)
    modname = getattr(obj, "__module__", None)
    return isinstance(modname, str) and _module_is_local(modname)


class _Normalize(ast.NodeTransformer):
    def _strip(self, node: Any) -> Any:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Module = _strip


def _source_digest(obj: Any) -> str:
    """Digest of the normalized syntax tree of a function or class."""
    try:
        src = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(src)
    except (OSError, TypeError, SyntaxError, IndentationError):
        code = getattr(obj, "__code__", None)
        return digest(canonical(code.co_code if code else repr(obj)))
    for node in tree.body[:1]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []
    tree = _Normalize().visit(tree)
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:32]


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _functions_of(obj: Any) -> list[Callable[..., Any]]:
    if inspect.isclass(obj):
        out: list[Callable[..., Any]] = []
        for v in vars(obj).values():
            v = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
            if inspect.isfunction(v):
                out.append(v)
        return out
    fn = inspect.unwrap(obj) if callable(obj) else obj
    return [fn] if inspect.isfunction(fn) else []


def _references(fn: Callable[..., Any]) -> tuple[list[Any], dict[str, Any]]:
    """Project-local objects and simple constants that ``fn`` refers to."""
    names = _code_names(fn.__code__)
    glb = fn.__globals__
    cells = [c.cell_contents for c in (fn.__closure__ or ()) if _cell_ok(c)]
    candidates = [glb[n] for n in names if n in glb] + cells
    refs: list[Any] = []
    consts: dict[str, Any] = {}
    for n in names:
        if n in glb and isinstance(glb[n], _CONSTANT_TYPES) and _module_is_local(fn.__module__):
            consts[f"{fn.__module__}.{n}"] = glb[n]
    for obj in candidates:
        if isinstance(obj, types.ModuleType):
            if is_project_local(obj):
                candidates.extend(getattr(obj, n) for n in names if hasattr(obj, n))
            continue
        obj = getattr(obj, "__wrapped__", obj)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and is_project_local(obj):
            refs.append(obj)
    return refs, consts


def _cell_ok(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _collect(fn: Callable[..., Any]) -> tuple[list[Any], dict[str, Any]]:
    """``fn`` and its transitive project-local callees; constants they read."""
    objs: list[Any] = []
    consts: dict[str, Any] = {}
    seen: set[int] = set()
    stack: list[Any] = [inspect.unwrap(fn)]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        objs.append(obj)
        for f in _functions_of(obj):
            refs, found = _references(f)
            stack.extend(refs)
            consts.update(found)
    return objs, consts


def code_fingerprint(fn: Callable[..., Any]) -> dict[str, str]:
    """Per-object source digests of ``fn`` and its transitive project-local callees.

    Keys are ``module.qualname``; values are digests of the normalized
    source. Simple module constants the code reads appear as ``const:module.NAME``.
    """
    objs, consts = _collect(fn)
    out = {_qualname(o): _source_digest(o) for o in objs}
    out.update({f"const:{k}": digest(canonical(v)) for k, v in consts.items()})
    return dict(sorted(out.items()))


def project_modules(fn: Callable[..., Any]) -> set[str]:
    """Names of the project-local modules defining ``fn`` and its callees."""
    objs, _ = _collect(fn)
    return {o.__module__ for o in objs if is_project_local(o)}
