"""Static assignability of annotations, for checking the edges of a pipeline.

``is_assignable(src, dst)``: may a value annotated ``src`` (an upstream output) be
passed where ``dst`` (a step input) is declared? Lenient where Python typing is
undecidable at runtime (forward references, protocols, bare generics): those pass.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
from typing import Any, Literal, TypeVar, Union

_NONE = type(None)
# int -> float -> complex, the numeric promotions type checkers accept
_PROMOTIONS: dict[type, tuple[type, ...]] = {float: (int,), complex: (int, float)}
#: stand-ins for classes of heavy modules (``af.Dataset`` for ``ray.data.Dataset``), each
#: with ``real(load=False)``; registered by ``dsl.artifacts``. ``normalize`` maps the real
#: class to its stand-in so both spellings of an annotation mean the same.
LAZY_ALIASES: list[Any] = []


def normalize(t: Any) -> Any:
    """Strip Annotated/NewType, map None and inspect.Parameter.empty."""
    if t is None:
        return _NONE
    if t is inspect.Parameter.empty:
        return Any
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
            continue
        supertype = getattr(t, "__supertype__", None)  # typing.NewType
        if supertype is not None:
            t = supertype
            continue
        for alias in LAZY_ALIASES:
            if t is alias.real(load=False):
                return alias
        return t


def is_union(t: Any) -> bool:
    """``A | B`` or ``Optional[A]``/``Union[A, B]``."""
    return typing.get_origin(t) in (Union, types.UnionType)


def is_any(t: Any) -> bool:
    """Matches anything: ``Any``, ``object``, a TypeVar or an unresolved (string) annotation."""
    return t is Any or t is object or isinstance(t, (TypeVar, str, typing.ForwardRef))


def is_assignable(src: Any, dst: Any) -> bool:
    """True when a value of type ``src`` is accepted by an annotation ``dst``."""
    try:
        return _is_assignable_cached(src, dst)
    except TypeError:  # unhashable annotation
        return _is_assignable(src, dst)


@functools.lru_cache(maxsize=4096)
def _is_assignable_cached(src: Any, dst: Any) -> bool:
    return _is_assignable(src, dst)


def _is_assignable(src: Any, dst: Any) -> bool:
    src, dst = normalize(src), normalize(dst)
    if is_any(dst) or is_any(src) or src == dst:
        return True
    if is_union(src):
        return all(is_assignable(s, dst) for s in typing.get_args(src))
    if is_union(dst):
        return any(is_assignable(src, d) for d in typing.get_args(dst))
    s_origin, d_origin = typing.get_origin(src), typing.get_origin(dst)
    if d_origin is Literal:
        if s_origin is not Literal:
            return False
        return set(typing.get_args(src)) <= set(typing.get_args(dst))
    if s_origin is Literal:
        return all(is_assignable(type(v), dst) for v in typing.get_args(src))
    s_cls, d_cls = s_origin or src, d_origin or dst
    if not (isinstance(s_cls, type) and isinstance(d_cls, type)):
        return True  # not checkable at runtime (special forms, protocols, ...)
    try:
        if not (issubclass(s_cls, d_cls) or s_cls in _PROMOTIONS.get(d_cls, ())):
            return False
    except TypeError:  # non-runtime-checkable protocols and the like
        return True
    return _args_assignable(s_cls, typing.get_args(src), typing.get_args(dst), d_cls)


def _args_assignable(s_cls: type, s_args: tuple, d_args: tuple, d_cls: type) -> bool:
    if not d_args or not s_args:
        return True  # a bare generic means "any parameters"
    if d_cls is tuple or s_cls is tuple:
        return _tuple_assignable(s_args, d_args)
    if d_cls is collections.abc.Callable or s_cls is collections.abc.Callable:
        return True
    if len(s_args) != len(d_args):
        return True  # e.g. Counter[str] into Mapping[str, int]: not decidable here
    return all(is_assignable(s, d) for s, d in zip(s_args, d_args, strict=True))


def _tuple_assignable(s_args: tuple, d_args: tuple) -> bool:
    if s_args == ((),):
        s_args = ()
    if d_args == ((),):
        d_args = ()
    s_var = len(s_args) == 2 and s_args[1] is Ellipsis
    d_var = len(d_args) == 2 and d_args[1] is Ellipsis
    if d_var:
        elems = s_args[:1] if s_var else s_args
        return all(is_assignable(s, d_args[0]) for s in elems)
    if s_var or len(s_args) != len(d_args):
        return False
    return all(is_assignable(s, d) for s, d in zip(s_args, d_args, strict=True))


def type_name(t: Any) -> str:
    """A short, readable name for an annotation (``int``, ``list[str]``, ``Dataset | None``)."""
    try:
        return _type_name_cached(t)
    except TypeError:  # unhashable annotation
        return _type_name(t)


@functools.lru_cache(maxsize=4096)
def _type_name_cached(t: Any) -> str:
    return _type_name(t)


def _type_name(t: Any) -> str:
    t = normalize(t)
    if t is Any:
        return "Any"
    if t is _NONE:
        return "None"
    if t is Ellipsis:
        return "..."
    if isinstance(t, TypeVar):
        return t.__name__
    if isinstance(t, typing.ForwardRef):
        return t.__forward_arg__
    if isinstance(t, str):
        return t
    if is_union(t):
        return " | ".join(type_name(a) for a in typing.get_args(t))
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        base = getattr(origin, "__name__", None) or repr(origin).replace("typing.", "")
        if not args:
            return base
        if args == ((),):
            return f"{base}[()]"
        inner = ", ".join(type_name(a) if not isinstance(a, list) else
                          "[" + ", ".join(type_name(x) for x in a) + "]" for a in args)
        return f"{base}[{inner}]"
    if isinstance(t, type):
        return t.__qualname__
    return repr(t).replace("typing.", "")


def value_desc(value: Any, limit: int = 60) -> str:
    """``'deep' (str)``: a value and its type, for error messages."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(value).__name__})"


__all__ = ["is_any", "is_assignable", "is_union", "normalize", "type_name", "value_desc"]
