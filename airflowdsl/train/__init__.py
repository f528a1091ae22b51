"""The training layer: the Ray AIR Trainer family on one shared actor-group runtime.

Framework modules (``airflowdsl.train.torch``, ``.xgboost``, ...) import their framework
lazily, so importing this package is cheap and never needs a framework installed.
"""

from __future__ import annotations

from airflowdsl.train.trainer import BaseTrainer, DataParallelTrainer, TrainingFailedError

__all__ = ["BaseTrainer", "DataParallelTrainer", "TrainingFailedError"]
