"""The artifact types that flow between steps: ``Dataset`` and ``Checkpoint``.

``af.Dataset`` stands for ``ray.data.Dataset`` without importing Ray Data (about a
second of imports) until a dataset really exists: ``isinstance(ds, af.Dataset)`` and
``issubclass(ray.data.MaterializedDataset, af.Dataset)`` hold, class attributes are the
real class's, and an annotation of either one means the same to the compiler. A fully
cached rerun therefore never imports Ray at all.
"""

from __future__ import annotations

import importlib
import sys
import typing
from typing import Any

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.dsl.types import LAZY_ALIASES, is_union, normalize


class _LazyAlias(type):
    """Metaclass of a stand-in for a class that lives in a heavy module."""

    _target: tuple[str, str]

    def real(cls, *, load: bool = True) -> type | None:
        """The aliased class: imported when ``load``, else only if already imported."""
        module, name = cls._target
        mod = importlib.import_module(module) if load else sys.modules.get(module)
        return getattr(mod, name, None) if mod is not None else None

    def __instancecheck__(cls, obj: Any) -> bool:
        real = cls.real(load=False)  # not imported: nothing can be an instance
        return real is not None and isinstance(obj, real)

    def __subclasscheck__(cls, sub: type) -> bool:
        if sub is cls:
            return True
        real = cls.real(load=False)
        return real is not None and isinstance(sub, type) and issubclass(sub, real)

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__") or attr == "_target":
            raise AttributeError(attr)
        return getattr(cls.real(), attr)


class Dataset(metaclass=_LazyAlias):
    """``ray.data.Dataset``, imported on first use (see the module docstring)."""

    _target = ("ray.data", "Dataset")

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        real = Dataset.real()
        assert real is not None
        return real(*args, **kwargs)


LAZY_ALIASES.append(Dataset)
ARTIFACT_TYPES: tuple[type, ...] = (Dataset, Checkpoint)


def artifact_type(annotation: Any) -> type | None:
    """The artifact class an annotation asks for (``Dataset | None`` -> Dataset), else None."""
    ann = normalize(annotation)
    candidates = typing.get_args(ann) if is_union(ann) else (ann,)
    for cand in candidates:
        cls = typing.get_origin(cand) or cand
        if isinstance(cls, type) and issubclass(cls, ARTIFACT_TYPES):
            return normalize(cls)  # type: ignore[no-any-return]
    return None


__all__ = ["ARTIFACT_TYPES", "Checkpoint", "Dataset", "artifact_type"]
