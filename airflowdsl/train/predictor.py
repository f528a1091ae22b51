"""Predictor base: a model restored from a Checkpoint that scores pandas batches."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import pandas as pd

from airflowdsl.air.checkpoint import Checkpoint

P = TypeVar("P", bound="Predictor")


class Predictor:
    """Subclasses implement ``from_checkpoint`` and ``_predict_pandas``."""

    @classmethod
    def from_checkpoint(cls: type[P], checkpoint: Checkpoint, **kwargs: Any) -> P:
        raise NotImplementedError

    def predict(self, data: pd.DataFrame | np.ndarray | dict[str, Any], **kwargs: Any) -> pd.DataFrame:
        """Predictions for a batch: a DataFrame with a ``predictions`` column (AIR shape)."""
        frame = _to_frame(data)
        out = self._predict_pandas(frame, **kwargs)
        if not isinstance(out, pd.DataFrame):
            out = pd.DataFrame({"predictions": list(np.asarray(out))})
        return out.reset_index(drop=True)

    def _predict_pandas(self, data: pd.DataFrame, **kwargs: Any) -> pd.DataFrame | np.ndarray:
        raise NotImplementedError


def _to_frame(data: pd.DataFrame | np.ndarray | dict[str, Any]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        return pd.DataFrame({k: list(v) if np.ndim(v) > 1 else v for k, v in data.items()})
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])])


__all__ = ["Predictor"]
