"""``from airflowdsl.air.integrations.keras import ReportCheckpointCallback`` (AIR's path).

The same class as ``airflowdsl.train.tensorflow.ReportCheckpointCallback`` (a tf-keras
``Callback``, built on first access so that importing this module needs no TensorFlow).
This alias is the one import from ``air`` up into ``train`` (allowed by name in the
import-linter contracts): AIR code moves over by changing ``ray.air`` to
``airflowdsl.air``.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("ReportCheckpointCallback", "Callback"):  # Callback: AIR 2.2-2.4's name
        from airflowdsl.train import tensorflow_callback

        return tensorflow_callback.ReportCheckpointCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__: list[str] = []  # ReportCheckpointCallback comes through __getattr__
