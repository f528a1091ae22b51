"""What a function's code can observe: the globals, module attributes, closure cells and
defaults it reads, found in its bytecode.

Only names the code *loads as globals* (``LOAD_GLOBAL``/``LOAD_NAME``), the attribute
chains hanging off them (``cfg.THRESHOLD``, ``helpers.clean``), names imported inside the
function, closure cells and default values count. An attribute name alone (``.fit`` in
``StandardScaler().fit(x)``) is never looked up as a global, so it creates no dependency.
"""

from __future__ import annotations

import dis
import importlib.util
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
        if nxt is _MISSING:  # a submodule not imported yet (``import a.b`` in a function)?
            src = unimported_source(f"{obj.__name__}.{attr}")
            if src is not None:
                return Ref(f"{label}.{attr}", src)
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
    pending_import: str | None = None  # relative imports keep their dots: ".helpers"
    from_list: Any = None  # None: ``import a.b [as h]``; a tuple: ``from a import b``
    last_from = ""
    ins = list(dis.get_instructions(code))
    for i, inst in enumerate(ins):
        op, arg = inst.opname, inst.argval
        kind = None
        if op in _GLOBAL_OPS:
            kind, name = "global", str(arg)
        elif op == "LOAD_FAST" and arg in local_mods:
            kind, name = "module", local_mods[arg]
        elif op == "IMPORT_NAME":  # after LOAD_CONST level, LOAD_CONST fromlist
            level = ins[i - 2].argval if i >= 2 and ins[i - 2].opname == "LOAD_CONST" else 0
            from_list = ins[i - 1].argval if i >= 1 and ins[i - 1].opname == "LOAD_CONST" else None
            pending_import = "." * (level if isinstance(level, int) else 0) + str(arg)
            continue
        elif op == "IMPORT_FROM" and pending_import:
            yield "module", pending_import, [str(arg)]
            last_from = str(arg)
            continue
        elif op == "STORE_FAST" and pending_import and ins[i - 1].opname == "IMPORT_NAME":
            top = pending_import.split(".")[0]
            local_mods[str(arg)] = top if arg == top else pending_import
            pending_import = None
            continue
        elif op == "STORE_FAST" and pending_import and ins[i - 1].opname == "IMPORT_FROM":
            # ``import a.b as h`` binds module a.b; ``from a import b as h`` binds a.b when
            # it is a submodule (else the IMPORT_FROM above counted the attribute)
            sep = "" if pending_import.endswith(".") else "."
            local_mods[str(arg)] = (pending_import if from_list is None
                                    else f"{pending_import}{sep}{last_from}")
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
            name = _absolute(name, glb, mod)
            root = sys.modules.get(name, _MISSING)
            if root is _MISSING:  # imported inside a function that has not run yet:
                # the deepest module file of ``import a.b`` ... ``a.b.f``
                for k in range(len(chain), -1, -1):
                    if (root := unimported_source(".".join([name, *chain[:k]]))) is not None:
                        break
                if root is None:
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


def _absolute(name: str, glb: dict[str, Any], mod: Any) -> str:
    """``name`` of an import inside a function, made absolute (``from . import x``)."""
    if not name.startswith("."):
        return name
    package = glb.get("__package__") or (mod.rpartition(".")[0] if isinstance(mod, str) else "")
    try:
        return importlib.util.resolve_name(name, package)
    except (ImportError, ValueError):
        return name


@dataclass(frozen=True)
class SourceFile:
    """A project-local module's source file, counted whole (``canonical``: its bytes):
    a module imported inside a function that has not run yet (nothing to inspect), or a
    module the code uses as an object (``getattr(helpers, name)``, ``vars(helpers)``)."""

    path: str


def unimported_source(name: str) -> SourceFile | None:
    """The source file of project-local module ``name`` found on ``sys.path`` without
    importing anything (``PathFinder``: no parent package runs either), else None."""
    from importlib.machinery import PathFinder

    search: Any = None
    path = None
    for part in name.split("."):
        if search is False:
            return None
        spec = PathFinder.find_spec(part, search)
        if spec is None:
            return None
        path = spec.origin
        search = list(spec.submodule_search_locations or ()) or False
    if not path or not os.path.isfile(path) or not file_is_local(path):
        return None
    return SourceFile(path)


def module_source(module: types.ModuleType) -> SourceFile | None:
    path = getattr(module, "__file__", None)
    return SourceFile(path) if path and os.path.isfile(path) else None


def is_missing(value: Any) -> bool:
    return value is _MISSING
