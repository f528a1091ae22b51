"""Pydantic validation of constant values against annotations (cached adapters).

pydantic is imported on the first value that needs it: a value of exactly its
annotation's type among ``int``, ``float``, ``str``, ``bool`` is what pydantic would
return, so it is taken as is.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from airflowdsl.dsl.types import is_any, normalize

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

_PLAIN = (int, float, str, bool)


def _make_adapter(annotation: Any) -> TypeAdapter[Any] | None:
    from pydantic import ConfigDict, TypeAdapter

    try:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
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
    if type(value) is annotation and annotation in _PLAIN:
        return value, None
    adapter = adapter_for(annotation)
    if adapter is None:
        return value, None
    from pydantic import ValidationError

    try:
        return adapter.validate_python(value), None
    except ValidationError as err:
        return value, pydantic_message(err)


__all__ = ["adapter_for", "pydantic_message", "validate_value"]
