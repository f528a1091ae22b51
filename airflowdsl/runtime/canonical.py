"""Canonical, stable byte forms of parameter values (``functools.singledispatch``).

``canonical(value)`` returns bytes that are equal exactly when two values
should share a cache entry. Register more types with
``@canonical.register(MyType)``. Unknown objects fall back to their
cloudpickle bytes (stable for plain data objects; not for objects holding
process state); :func:`try_canonical` refuses that fallback and returns None.
Functions and ``functools.partial`` are registered by ``runtime.fingerprint``
(their bytes are their code fingerprint).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import fractions
import hashlib
import json
import operator
import pathlib
import re
import threading
import types
from decimal import Decimal
from functools import singledispatch
from typing import Any


def digest(data: bytes, size: int = 32) -> str:
    """Hex digest (sha256, truncated to ``size`` characters)."""
    return hashlib.sha256(data).hexdigest()[:size]


class _NotCanonical(TypeError):
    """``value`` has no canonical form other than its pickle (raised in strict mode)."""


_STATE = threading.local()


def try_canonical(value: Any) -> bytes | None:
    """``canonical(value)``, or None when it would need the pickle fallback (objects
    holding process state: loggers, sessions, locks) or is self-referencing."""
    outer = getattr(_STATE, "strict", False)
    _STATE.strict = True
    try:
        return canonical(value)
    except (_NotCanonical, RecursionError):
        return None
    finally:
        _STATE.strict = outer


def _pickled(value: Any) -> bytes:
    if getattr(_STATE, "strict", False):
        raise _NotCanonical(type(value).__qualname__)
    import cloudpickle

    return tagged("pickle", cloudpickle.dumps(value))


def tagged(tag: str, *parts: bytes) -> bytes:
    """``tag``, a NUL, then each part length-prefixed: unambiguous concatenation."""
    body = b"".join(len(p).to_bytes(8, "little") + p for p in parts)
    return tag.encode() + b"\x00" + body


@singledispatch
def canonical(value: Any) -> bytes:
    """Canonical bytes of ``value`` for hashing."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return tagged("dc:" + _typename(type(value)), canonical(fields))
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):
        return tagged("pyd:" + _typename(type(value)), canonical(value.model_dump()))
    if isinstance(value, type):
        return tagged("type", _typename(value).encode())
    mod = type(value).__module__
    if mod.startswith("numpy"):
        return _numpy(value)
    if mod.startswith("pandas"):
        return _pandas(value)
    return _pickled(value)


def _typename(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


@canonical.register(type(None))
@canonical.register(bool)
@canonical.register(int)
@canonical.register(str)
def _scalar(value: Any) -> bytes:
    return tagged(type(value).__name__, json.dumps(value).encode())


@canonical.register(float)
def _float(value: float) -> bytes:
    return tagged("float", repr(value).encode())


@canonical.register(bytes)
def _bytes(value: bytes) -> bytes:
    return tagged("bytes", value)


def _part(value: Any) -> bytes:
    """An element of a container: its canonical form; one without (strict mode only: a
    logger in a config dict) counts by its type name, so the rest still counts."""
    try:
        return canonical(value)
    except _NotCanonical:
        return tagged("object", _typename(type(value)).encode())


@canonical.register(list)
@canonical.register(tuple)
@canonical.register(collections.deque)
def _seq(value: Any) -> bytes:
    return tagged(type(value).__name__, *(_part(v) for v in value))


@canonical.register(set)
@canonical.register(frozenset)
def _set(value: Any) -> bytes:
    return tagged("set", *sorted(_part(v) for v in value))


@canonical.register(dict)
@canonical.register(types.MappingProxyType)
def _dict(value: Any) -> bytes:
    items = sorted((_part(k), _part(v)) for k, v in value.items())
    return tagged("dict", *(k + v for k, v in items))


@canonical.register(bytearray)
def _bytearray(value: bytearray) -> bytes:
    return tagged("bytearray", bytes(value))


@canonical.register(re.Pattern)
def _pattern(value: re.Pattern[Any]) -> bytes:
    return tagged("re", canonical(value.pattern), canonical(value.flags))


@canonical.register(enum.Enum)
def _enum(value: enum.Enum) -> bytes:
    return tagged("enum:" + _typename(type(value)), canonical(value.value))


@canonical.register(pathlib.PurePath)
@canonical.register(Decimal)
@canonical.register(dt.date)
@canonical.register(dt.time)
@canonical.register(dt.timedelta)
@canonical.register(complex)
@canonical.register(range)
@canonical.register(fractions.Fraction)
@canonical.register(operator.itemgetter)  # str: its repr, ``operator.itemgetter(1)``
@canonical.register(operator.attrgetter)
def _by_str(value: Any) -> bytes:
    return tagged(_typename(type(value)), str(value).encode())


def _numpy(value: Any) -> bytes:
    import numpy as np

    if isinstance(value, np.ndarray) and value.dtype != object:
        arr = np.ascontiguousarray(value)
        return tagged("ndarray", str(arr.dtype).encode(), repr(arr.shape).encode(), arr.tobytes())
    if isinstance(value, np.generic):
        return tagged("np:" + str(value.dtype), value.tobytes())
    if isinstance(value, np.ndarray):  # dtype=object: element by element
        return tagged("ndarray-object", repr(value.shape).encode(),
                      *(_part(v) for v in value.ravel(order="C")))
    return _pickled(value)


def _pandas(value: Any) -> bytes:
    import pandas as pd

    if isinstance(value, (pd.DataFrame, pd.Series)):
        hashed = pd.util.hash_pandas_object(value, index=True).values.tobytes()
        cols = repr(list(value.columns) if isinstance(value, pd.DataFrame) else value.name)
        return tagged("pandas", cols.encode(), repr(list(value.dtypes.astype(str)) if isinstance(value, pd.DataFrame) else str(value.dtype)).encode(), hashed)
    return _pickled(value)
