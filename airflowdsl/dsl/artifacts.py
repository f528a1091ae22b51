"""The artifact types that flow between steps: ``Dataset`` and ``Checkpoint``."""

from __future__ import annotations

import typing
from typing import Any

from ray.data import Dataset

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.dsl.types import _is_union, _norm

ARTIFACT_TYPES: tuple[type, ...] = (Dataset, Checkpoint)


def artifact_type(annotation: Any) -> type | None:
    """The artifact class an annotation asks for (``Dataset | None`` -> Dataset), else None."""
    ann = _norm(annotation)
    candidates = typing.get_args(ann) if _is_union(ann) else (ann,)
    for cand in candidates:
        cls = typing.get_origin(cand) or cand
        if isinstance(cls, type) and issubclass(cls, ARTIFACT_TYPES):
            return cls
    return None


__all__ = ["ARTIFACT_TYPES", "Checkpoint", "Dataset", "artifact_type"]
