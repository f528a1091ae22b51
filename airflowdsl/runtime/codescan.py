"""What a function's code can observe: the globals, module attributes, closure cells and
defaults it reads, found in its bytecode.

Only names the code *loads as globals* (``LOAD_GLOBAL``/``LOAD_NAME``), the attribute
chains hanging off them (``cfg.THRESHOLD``, ``helpers.clean``), names imported inside the
function, closure cells and default values count. An attribute name alone (``.fit`` in
``StandardScaler().fit(x)``) is never looked up as a global, so it creates no dependency.
"""

from __future__ import annotations

import dis
import os
import sys
import sysconfig
import types
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_LIB_PREFIXES = tuple(
    os.path.realpath(p)
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
)
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_MISSING = object()


_OWN = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # airflowdsl/


def module_is_local(modname: str) -> bool:
    """True for the user's own modules (not stdlib, site-packages or airflowdsl)."""
    if modname in ("builtins", "airflowdsl") or modname.startswith("airflowdsl."):
        return False
    if modname == "__main__":
        return True
    mod = sys.modules.get(modname)
    path = getattr(mod, "__file__", None) if mod is not None else None
    return bool(path) and file_is_local(path)


@lru_cache(maxsize=4096)
def file_is_local(path: str) -> bool:
    """True for a source file of the user's own (not stdlib, site-packages or airflowdsl),
    and for code without a file (``<string>``: ``exec``, ``python -c``, a notebook cell)."""
    if path.startswith("<"):
        return True
    real = os.path.realpath(path)
    return not (real.startswith(_LIB_PREFIXES) or "site-packages" in real
                or "dist-packages" in real or real.startswith(_OWN + os.sep))


def is_project_local(obj: Any) -> bool:
    """True for functions/classes/modules defined in the user's own code. A function or
    class whose module Python does not hold (``runpy.run_path``, ``exec`` into a plain
    dict) is judged by the file its code came from: such code is usually the user's,
    and calling it a library's would leave its edits out of the cache key."""
    if isinstance(obj, types.ModuleType):
        return module_is_local(obj.__name__)
    modname = getattr(obj, "__module__", None)
    if isinstance(modname, str) and (modname in sys.modules or modname == "__main__"):
        return module_is_local(modname)
    path = _code_file(obj)
    return path is not None and file_is_local(path)


def _code_file(obj: Any) -> str | None:
    """The file a function's code (or the first method's of a class) was compiled from."""
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return code.co_filename
    if isinstance(obj, type):
        for v in vars(obj).values():
            v = getattr(v, "__func__", v)  # staticmethod, classmethod
            if isinstance(code := getattr(v, "__code__", None), types.CodeType):
                return code.co_filename
    return None


@dataclass(frozen=True)
class Ref:
    """One value the code can observe: ``label`` names it (``mod.NAME``, ``mod.cfg.X``)."""

    label: str
    value: Any


def _resolve(root: Any, label: str, chain: tuple[str, ...]) -> Ref:
    """Follow ``chain`` through project-local modules only (never into a library)."""
    obj = root
    for attr in chain:
        if not (isinstance(obj, types.ModuleType) and is_project_local(obj)):
            break
        nxt = getattr(obj, attr, _MISSING)
        if nxt is _MISSING:
            break
        obj, label = nxt, f"{label}.{attr}"
    return Ref(label, obj)


@lru_cache(maxsize=4096)
def _loads(code: types.CodeType) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """``_chains(code)``, kept per code object: the names a code object loads are fixed
    by it (immutable; an equal code object disassembles the same), while the values
    behind them are looked up afresh by every ``references`` call. Disassembling was
    ~40 % of planning a 52-step pipeline, once per function per run."""
    return tuple((kind, name, tuple(chain)) for kind, name, chain in _chains(code))


def _chains(code: types.CodeType) -> Iterator[tuple[str, str, list[str]]]:
    """(kind, name, attribute chain) for each global/import/local-module load in ``code``."""
    local_mods: dict[str, str] = {}
    pending_import: str | None = None
    ins = list(dis.get_instructions(code))
    for i, inst in enumerate(ins):
        op, arg = inst.opname, inst.argval
        kind = None
        if op in _GLOBAL_OPS:
            kind, name = "global", str(arg)
        elif op == "LOAD_FAST" and arg in local_mods:
            kind, name = "module", local_mods[arg]
        elif op == "IMPORT_NAME":
            pending_import = str(arg)
            continue
        elif op == "IMPORT_FROM" and pending_import:
            yield "module", pending_import, [str(arg)]
            continue
        elif op == "STORE_FAST" and pending_import and ins[i - 1].opname == "IMPORT_NAME":
            top = pending_import.split(".")[0]
            local_mods[str(arg)] = top if arg == top else pending_import
            pending_import = None
            continue
        if kind is None:
            continue
        chain: list[str] = []
        for nxt in ins[i + 1:]:
            if nxt.opname not in _ATTR_OPS:
                break
            chain.append(str(nxt.argval))
        yield kind, name, chain
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _chains(const)


def references(fn: types.FunctionType) -> list[Ref]:
    """Every value ``fn``'s code can observe through globals, imports, closures, defaults."""
    glb = fn.__globals__
    builtins = glb.get("__builtins__", {})
    builtins = vars(builtins) if isinstance(builtins, types.ModuleType) else builtins
    mod = fn.__module__
    refs: list[Ref] = []
    seen: set[str] = set()
    for kind, name, chain in _loads(fn.__code__):
        if kind == "global":
            if name in glb:
                root, label = glb[name], f"{mod}.{name}"
            elif name in builtins:
                continue
            else:
                refs.append(Ref(f"{mod}.{name}", _MISSING))
                continue
        else:
            root = sys.modules.get(name, _MISSING)
            if root is _MISSING:
                continue
            label = name
        ref = _resolve(root, label, chain)
        if ref.label not in seen:
            seen.add(ref.label)
            refs.append(ref)
    qual = f"{mod}.{fn.__qualname__}"
    for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            refs.append(Ref(f"closure:{qual}.{var}", cell.cell_contents))
        except ValueError:  # an empty cell
            continue
    params = fn.__code__.co_varnames[:fn.__code__.co_argcount]
    for name, value in zip(params[len(params) - len(fn.__defaults__ or ()):],
                           fn.__defaults__ or (), strict=False):
        refs.append(Ref(f"default:{qual}.{name}", value))
    for name, value in (fn.__kwdefaults__ or {}).items():
        refs.append(Ref(f"default:{qual}.{name}", value))
    return refs


def is_missing(value: Any) -> bool:
    return value is _MISSING
