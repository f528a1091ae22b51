"""The AIR shape: session API, Checkpoint, Result and configs."""

from __future__ import annotations

from airflowdsl.air import session
from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from airflowdsl.air.result import Result

__all__ = [
    "Checkpoint",
    "CheckpointConfig",
    "FailureConfig",
    "Result",
    "RunConfig",
    "ScalingConfig",
    "session",
]
