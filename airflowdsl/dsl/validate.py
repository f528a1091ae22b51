"""Pydantic validation of constant values against annotations (cached adapters)."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from airflowdsl.dsl.types import is_any, normalize

_CONFIG = ConfigDict(arbitrary_types_allowed=True)


def _make_adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(annotation, config=_CONFIG)
    except Exception:
        try:  # BaseModel / dataclass / TypedDict annotations refuse a config
            return TypeAdapter(annotation)
        except Exception:
            return None  # not validatable: the value is taken as is


@functools.lru_cache(maxsize=4096)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any] | None:
    return _make_adapter(annotation)


def adapter_for(annotation: Any) -> TypeAdapter[Any] | None:
    if is_any(normalize(annotation)):
        return None
    try:
        return _cached_adapter(annotation)
    except TypeError:  # unhashable annotation
        return _make_adapter(annotation)


def pydantic_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


def validate_value(annotation: Any, value: Any) -> tuple[Any, str | None]:
    """(coerced value, None) or (value, pydantic error message)."""
    adapter = adapter_for(annotation)
    if adapter is None:
        return value, None
    try:
        return adapter.validate_python(value), None
    except ValidationError as err:
        return value, pydantic_message(err)


__all__ = ["adapter_for", "pydantic_message", "validate_value"]
