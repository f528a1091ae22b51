"""The training layer: the Ray AIR Trainer family on one shared actor-group runtime.

Framework modules (``airflowdsl.train.torch``, ``.xgboost``, ...) import their framework
lazily, so importing this package is cheap and never needs a framework installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflowdsl.train.trainer import BaseTrainer, DataParallelTrainer, TrainingFailedError

#: Ray 2.6's ``ray.train`` names (``ray.train.report``, ``ray.train.Checkpoint``, ...):
#: the AIR session functions and configs under this package too, loaded on first access
_AIR_NAMES = {
    "Checkpoint": "checkpoint", "CheckpointConfig": "config", "FailureConfig": "config",
    "RunConfig": "config", "ScalingConfig": "config", "Result": "result",
    "report": "session", "get_dataset_shard": "session", "get_checkpoint": "session",
}


def __getattr__(name: str) -> Any:
    if name in _AIR_NAMES:
        return getattr(importlib.import_module(f"airflowdsl.air.{_AIR_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BaseTrainer", "Checkpoint", "CheckpointConfig", "DataParallelTrainer",
           "FailureConfig", "Result", "RunConfig", "ScalingConfig", "TrainingFailedError",
           "get_checkpoint", "get_dataset_shard", "report"]
