"""Result of a fit: last metrics, every report, kept checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from airflowdsl.air.checkpoint import Checkpoint


@dataclass
class Result:
    """What ``Trainer.fit()`` returns (the AIR shape)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    error: BaseException | None = None
    path: str | None = None
    metrics_history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoints: list[tuple[Checkpoint, dict[str, Any]]] = field(default_factory=list)
    config: dict[str, Any] | None = None

    @property
    def metrics_dataframe(self) -> pd.DataFrame:
        """One row per report, with ``training_iteration`` and ``time_total_s``."""
        return pd.DataFrame(self.metrics_history)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if not isinstance(v, (dict, list))}
        return (
            f"Result(metrics={shown}, checkpoint={self.checkpoint!r}, "
            f"error={self.error!r}, path={self.path!r})"
        )


__all__ = ["Result"]
