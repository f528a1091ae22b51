"""Code fingerprints: everything a step's code can observe, as digests.

Starting from the step function, collected transitively:

- every project-local **function**: its normalized syntax tree (comments, docstrings,
  decorators removed); without readable source, its whole code object (bytecode,
  constants, names), so ``x + 1`` and ``x + 2`` never collide;
- every project-local **class** it reaches (called, instantiated, a base class, the type
  of a module-level instance): its bases, its attributes and the functions defined in
  it; the whole project-local hierarchy (inherited methods included);
- every **value** the code reads: module constants of any canonicalisable type
  (lists, dicts, dataclasses, arrays, ...) read as ``NAME`` or ``module.NAME``, default
  values, closure cells, ``functools.partial`` objects, functions held in containers.
  A value without a canonical form (a logger, a session) counts by its type name.

Found through bytecode (``runtime.codescan``): an attribute name never pulls in a
global of the same name. Library code (stdlib, site-packages, airflowdsl) is not
fingerprinted; the versions of the libraries the code references are recorded
(``Fingerprint.libraries``). ``Fingerprint.stale`` names functions whose module
changed on disk since it was imported (``runtime.ondisk``): the planner does not cache
those steps.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import textwrap
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflowdsl.runtime import libversions
from airflowdsl.runtime.canonical import canonical, digest, tagged, try_canonical
from airflowdsl.runtime.codescan import (
    Ref,
    SourceFile,
    is_missing,
    is_project_local,
    module_is_local,
    module_source,
    references,
)
from airflowdsl.runtime.ondisk import def_source, matches_disk

__all__ = ["Fingerprint", "code_fingerprint", "fingerprint", "is_project_local", "project_modules"]

_CLASS_SKIP = frozenset({
    "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__firstlineno__",
    "__static_attributes__", "__orig_bases__", "__parameters__", "__abstractmethods__",
    "__slotnames__",  # added by copyreg when an instance is first pickled
    "_abc_impl", "__annotations__",
})


@dataclass
class Fingerprint:
    digests: dict[str, str] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)
    libraries: dict[str, str] = field(default_factory=dict)  # distribution -> version
    stale: list[str] = field(default_factory=list)
    #: the cache key part made from it (``cache._code``), shared by the steps of its
    #: function within one plan; never set while ``stale``
    code_part: Any = field(default=None, repr=False, compare=False)


class _Normalize(ast.NodeTransformer):
    def _strip(self, node: Any) -> Any:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Module = _strip


def _code_bytes(code: types.CodeType) -> bytes:
    """A code object without line numbers: bytecode, constants, names."""
    consts = [_code_bytes(c) if isinstance(c, types.CodeType) else
              (try_canonical(c) or repr(c).encode()) for c in code.co_consts]
    return tagged("code", code.co_code, *consts, repr(code.co_names).encode(),
                   repr(code.co_varnames).encode(), repr(code.co_freevars).encode(),
                   repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())


def _source_digest(fn: types.FunctionType) -> str:
    fast = _def_digest(fn)
    if fast is not None:
        return fast
    if hasattr(fn, "__wrapped__"):  # ``inspect.getsource`` would read what it wraps
        return digest(_code_bytes(fn.__code__))
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return digest(_code_bytes(fn.__code__))
    return _tree_digest(tree)


def _tree_digest(tree: ast.Module) -> str:
    for node in tree.body[:1]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []
    tree = _Normalize().visit(tree)
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:32]


def _def_digest(fn: types.FunctionType) -> str | None:
    """``_source_digest`` of a ``def`` from its file's syntax tree, parsed once per file
    content (what ``inspect.getsource`` reads, without its tokenizer: the same digest).
    None for anything else (lambdas, no file, a file that does not hold it)."""
    code = getattr(fn, "__code__", None)  # its own: a wrapper's, not what it wraps
    if not isinstance(code, types.CodeType):
        return None
    path = code.co_filename
    if not path or path.startswith("<") or code.co_name == "<lambda>":
        return None
    try:
        with open(path, "rb") as fh:
            source = fh.read()
    except OSError:
        return None
    if (found := def_source(source, code)) is not None:  # its own lines: no whole-file parse
        if (own := _segment_digest(*found, code.co_name)) is not None:
            return own
    defs = _file_defs(path, source)
    return defs.digest((code.co_firstlineno, code.co_name)) if defs is not None else None


@functools.lru_cache(maxsize=1024)
def _segment_digest(text: bytes, indented: bool, name: str) -> str | None:
    """The digest of the one ``def`` named ``name`` that ``text`` holds (``def_source``:
    the def's node as the whole file's tree has it), else None."""
    try:
        tree = ast.parse(b"if 1:\n" + text if indented else text)
    except (SyntaxError, ValueError):
        return None
    body = tree.body[0].body if indented and tree.body else tree.body  # type: ignore[attr-defined]
    if len(body) != 1 or not isinstance(body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) \
            or body[0].name != name:
        return None
    return _tree_digest(ast.Module(body=[body[0]], type_ignores=[]))


class _FileDefs:
    """Every ``def`` of one file content by (first line, decorators included; name)."""

    def __init__(self, tree: ast.Module) -> None:
        self.nodes: dict[tuple[int, str], ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for node in _statements(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                self.nodes[(first, node.name)] = node
        self.digests: dict[tuple[int, str], str] = {}

    def digest(self, key: tuple[int, str]) -> str | None:
        if key not in self.digests:
            node = self.nodes.get(key)
            if node is None:
                return None
            # in place, no copy: removing docstrings is idempotent and every digest of this
            # file removes them; the decorators are put back (an enclosing def keeps them)
            decorators = node.decorator_list
            try:
                self.digests[key] = _tree_digest(ast.Module(body=[node], type_ignores=[]))
            finally:
                node.decorator_list = decorators
        return self.digests[key]


def _statements(tree: ast.Module) -> list[Any]:
    """Every statement of ``tree``, nested ones included (bodies of defs, classes,
    if/for/while/with/try/match): where every ``def`` is. Expressions are not visited
    (``ast.walk`` visits every node: ~3x slower on a whole file)."""
    out: list[Any] = []
    stack: list[Any] = list(tree.body)
    while stack:
        node = stack.pop()
        out.append(node)
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            sub = getattr(node, name, None)
            if isinstance(sub, list):
                stack.extend(sub)
    return out


@functools.lru_cache(maxsize=64)
def _file_defs(path: str, source: bytes) -> _FileDefs | None:
    """Keyed by the file's whole content (never by its modification time)."""
    try:
        return _FileDefs(ast.parse(source, path))
    except (SyntaxError, ValueError):
        return None


_PLAIN = (int, float, str, bytes, bool, type(None))


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class _Collector:
    def __init__(self) -> None:
        self.fp = Fingerprint()
        self.stack: list[Any] = []
        self.seen: set[int] = set()
        self.inside: set[int] = set()  # objects whose contents were walked (``_inside``)

    def run(self, root: Any) -> Fingerprint:
        self.value(Ref("root", root))
        while self.stack:
            obj = self.stack.pop()
            if id(obj) in self.seen:
                continue
            self.seen.add(id(obj))
            if inspect.isclass(obj):
                self.cls(obj)
            else:
                self.function(obj)
        self.fp.digests = dict(sorted(self.fp.digests.items()))
        return self.fp

    def function(self, fn: types.FunctionType) -> None:
        label = _qualname(fn)
        self.fp.digests[label] = _source_digest(fn)
        if isinstance(fn.__module__, str):  # None: ``exec`` into a dict without __name__
            self.fp.modules.add(fn.__module__)
        if not matches_disk(fn):
            self.fp.stale.append(label)
        for ref in references(fn):
            self.value(ref)

    def cls(self, cls: type) -> None:
        self.fp.modules.add(cls.__module__)
        entries: dict[str, str] = {"bases": repr([_qualname(b) for b in cls.__bases__])}
        for name, v in vars(cls).items():
            if name in _CLASS_SKIP:
                continue
            entries[name] = self.member(f"{_qualname(cls)}.{name}", v)
        self.fp.digests[_qualname(cls)] = digest(canonical(entries))
        for base in cls.__mro__[1:]:
            if is_project_local(base):
                self.stack.append(base)
            else:
                self.library(base)

    def member(self, label: str, v: Any) -> str:
        if isinstance(v, (staticmethod, classmethod)):
            v = v.__func__
        if isinstance(v, functools.cached_property):
            v = v.func
        if isinstance(v, functools.partialmethod):
            return self.member(label, v.func) + digest(canonical((tuple(v.args), v.keywords)))
        if isinstance(v, property):
            return repr([self.member(label, f) for f in (v.fget, v.fset, v.fdel)])
        if (inspect.isfunction(v) or inspect.isclass(v)) and is_project_local(v):
            self.stack.append(v)
            return f"-> {_qualname(v)}"
        b = try_canonical(v)
        if b is None and (is_project_local(type(v)) or isinstance(v, types.SimpleNamespace)):
            self.value(Ref(label, v))  # an instance as a class attribute: what it holds
            return f"-> {label}"
        return digest(b) if b is not None else f"object:{_qualname(type(v))}"

    def value(self, ref: Ref) -> None:
        v = ref.value
        if is_missing(v):
            self.fp.digests[f"missing:{ref.label}"] = "missing"
            return
        if isinstance(v, functools.partial):
            self.value(Ref(f"{ref.label}.func", v.func))
            self.fp.digests[f"const:{ref.label}.args"] = digest(
                canonical((tuple(v.args), dict(v.keywords))))
            return
        registry = getattr(v, "registry", None)  # functools.singledispatch: every impl
        if isinstance(registry, Mapping) and callable(getattr(v, "dispatch", None)):
            for impl in list(registry.values()):
                self.value(Ref(f"{ref.label}.registry", impl))
        if callable(v) and hasattr(v, "__wrapped__"):
            if inspect.isfunction(v) and is_project_local(v):
                self.stack.append(v)  # the user's wrapper (functools.wraps): its code counts
            v = inspect.unwrap(v)
        if isinstance(v, types.ModuleType):
            if not is_project_local(v):
                self.library(v)
            elif (src := module_source(v)) is not None:  # used as an object: all of it
                self.fp.digests[f"module:{ref.label}"] = digest(canonical(src))
            return
        if inspect.isfunction(v) or inspect.isclass(v):
            if is_project_local(v):
                self.stack.append(v)
            else:
                self.library(v)
            return
        if isinstance(v, (types.BuiltinFunctionType, types.MethodWrapperType)):
            return
        if callable(getattr(v, "pyfunc", None)) and type(v).__name__ == "vectorize":
            self.value(Ref(f"{ref.label}.pyfunc", v.pyfunc))  # numpy.vectorize
        if isinstance(v, types.MethodType):  # a bound method: its function and its object
            self.value(Ref(f"{ref.label}.__func__", v.__func__))
            self.value(Ref(f"{ref.label}.__self__", v.__self__))
            return
        b = try_canonical(v)
        self.fp.digests[f"const:{ref.label}"] = (
            digest(b) if b is not None else f"object:{_qualname(type(v))}")
        if is_project_local(type(v)):
            self.stack.append(type(v))
        else:
            self.library(type(v))
        if b is None or isinstance(v, (list, tuple, dict)):
            self._inside(ref.label, v)

    def _inside(self, label: str, v: Any) -> None:
        """What a value without a canonical form holds (an instance of the user's class,
        a ``SimpleNamespace``: its attributes), or what a container holds that has none
        (``[Engine()]``): each counted as a value of its own, so an edit of the data or of
        the class behind it counts. Once per object (cycles)."""
        if id(v) in self.inside:
            return
        self.inside.add(id(v))
        container = isinstance(v, (list, tuple, dict))
        if container:
            items: Any = v.items() if isinstance(v, dict) else enumerate(v)
        elif is_project_local(type(v)) or isinstance(v, types.SimpleNamespace):
            state = dict(getattr(v, "__dict__", {}))
            for slot in getattr(type(v), "__slots__", ()):
                if hasattr(v, slot):
                    state[slot] = getattr(v, slot)
            items = sorted(state.items())
        else:
            return
        for k, item in items:
            if container and (isinstance(item, _PLAIN) or (
                    try_canonical(item) is not None and not is_project_local(type(item)))):
                continue  # already in the container's canonical form
            self.value(Ref(f"{label}[{k!r}]", item))

    def library(self, obj: Any) -> None:
        mod = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
        if isinstance(mod, str) and not module_is_local(mod):
            found = libversions.version_of(mod)
            if found is not None:
                self.fp.libraries[found[0]] = found[1]


_LOCAL = threading.local()


def fingerprint(fn: Callable[..., Any]) -> Fingerprint:
    """Everything ``fn``'s code can observe, as digests (see the module docstring)."""
    return _Collector().run(fn)


def code_fingerprint(fn: Callable[..., Any]) -> dict[str, str]:
    """``label -> digest`` of ``fn`` and what it observes (``fingerprint(fn).digests``).

    Labels: ``module.qualname`` for functions and classes, ``const:...`` for values
    (module constants, ``default:``/``closure:`` values), ``missing:...`` for a global
    that does not exist.
    """
    return fingerprint(fn).digests


def project_modules(fn: Callable[..., Any]) -> set[str]:
    """Names of the project-local modules defining ``fn`` and what it observes."""
    return {m for m in fingerprint(fn).modules if module_is_local(m)}


@canonical.register(types.FunctionType)
def _function(fn: types.FunctionType) -> bytes:
    """A function value (a lambda in a dict, a callback param): its code fingerprint."""
    if not is_project_local(fn):
        return tagged("libfn", _qualname(fn).encode())
    busy: set[int] = getattr(_LOCAL, "busy", set())
    if id(fn) in busy:  # a function reachable from itself through a value
        return tagged("fnref", _qualname(fn).encode())
    _LOCAL.busy = busy | {id(fn)}
    try:
        return tagged("fn", canonical(code_fingerprint(fn)))
    finally:
        _LOCAL.busy = busy


@canonical.register(SourceFile)
def _source_file(src: SourceFile) -> bytes:
    try:
        with open(src.path, "rb") as fh:
            return tagged("source", fh.read())
    except OSError:
        return tagged("source-missing", src.path.encode())


@canonical.register(functools.partial)
def _partial(p: functools.partial[Any]) -> bytes:
    return tagged("partial", canonical(p.func), canonical(tuple(p.args)),
                   canonical(dict(p.keywords)))


@canonical.register(types.BuiltinFunctionType)
def _builtin(fn: Any) -> bytes:
    return tagged("builtin", f"{getattr(fn, '__module__', '')}.{fn.__qualname__}".encode())
