"""The AIR shape: session API, Checkpoint, Result and configs.

Names load on first access (PEP 562), so ``airflowdsl.air.checkpoint`` (which every
pipeline needs) does not pull in pandas and pydantic's dataclasses with ``Result``
and the configs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflowdsl.air import session
    from airflowdsl.air.callbacks import ReportCallback
    from airflowdsl.air.checkpoint import Checkpoint
    from airflowdsl.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from airflowdsl.air.result import Result

_WHERE = {"Checkpoint": "checkpoint", "CheckpointConfig": "config", "FailureConfig": "config",
          "RunConfig": "config", "ScalingConfig": "config", "Result": "result",
          "ReportCallback": "callbacks"}


def train_test_split(dataset: Any, test_size: float | int, *, shuffle: bool = False,
                     seed: int | None = None) -> tuple[Any, Any]:
    """AIR's ``ray.air.train_test_split``: ``(train, test)`` of a Ray Dataset
    (``test_size``: a fraction or a row count)."""
    train, test = dataset.train_test_split(test_size=test_size, shuffle=shuffle, seed=seed)
    return train, test


def __getattr__(name: str) -> Any:
    if name == "session":
        return importlib.import_module(f"{__name__}.session")
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Checkpoint",
    "CheckpointConfig",
    "FailureConfig",
    "ReportCallback",
    "Result",
    "RunConfig",
    "ScalingConfig",
    "session",
    "train_test_split",
]
