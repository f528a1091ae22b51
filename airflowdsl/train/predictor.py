"""Predictor base: a model restored from a Checkpoint that scores pandas batches.

As in AIR, a predictor built with ``from_checkpoint`` applies the preprocessor the
trainer stored in that checkpoint (``Checkpoint.get_preprocessor()``) to every batch
before the model sees it, so training and serving cannot drift. Every subclass's
``from_checkpoint`` gets this without code of its own (``__init_subclass__`` wraps it).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.train.preprocess import transform_frame

P = TypeVar("P", bound="Predictor")


class Predictor:
    """Subclasses implement ``from_checkpoint`` and ``_predict_pandas``."""

    preprocessor: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("from_checkpoint")
        if isinstance(own, classmethod) and not getattr(own.__func__, "_adds_preprocessor", False):
            cls.from_checkpoint = classmethod(  # type: ignore[method-assign,assignment]
                _with_preprocessor(own.__func__))

    @classmethod
    def from_checkpoint(cls: type[P], checkpoint: Checkpoint, **kwargs: Any) -> P:
        raise NotImplementedError

    @classmethod
    def check_from_checkpoint(cls, kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` now when ``from_checkpoint(ckpt, **kwargs)`` cannot take
        ``kwargs`` (BatchPredictor calls this when it is built, not in its actors).
        Subclasses may check the values too."""
        try:
            sig = inspect.signature(cls.from_checkpoint)
        except (TypeError, ValueError):
            return
        try:
            sig.bind(None, **kwargs)  # None stands for the checkpoint
        except TypeError as exc:
            params = list(sig.parameters.values())[1:]
            accepted = [p.name for p in params
                        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            raise TypeError(f"{cls.__name__}.from_checkpoint(checkpoint, "
                            f"{', '.join(f'{k}=...' for k in kwargs)}): {exc}; it takes "
                            f"{accepted}") from None

    def get_preprocessor(self) -> Any:
        """The fitted preprocessor applied before the model (None: none)."""
        return self.preprocessor

    def set_preprocessor(self, preprocessor: Any) -> None:
        self.preprocessor = preprocessor

    def predict(self, data: pd.DataFrame | np.ndarray | dict[str, Any], **kwargs: Any) -> Any:
        """Predictions for a batch, in the input's format (as AIR): a DataFrame with a
        ``predictions`` column for a DataFrame, an array for an array, a dict of arrays
        for a dict. The checkpoint's preprocessor is applied first."""
        frame = self.preprocess(_to_frame(data))
        out = self.predict_frame(frame, **kwargs)
        if isinstance(data, np.ndarray):
            return _to_array(out)
        if isinstance(data, dict):
            return {col: _to_array(out[[col]]) for col in out.columns}
        return out

    def preprocess(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` through the preprocessor (unchanged without one)."""
        if self.preprocessor is None:
            return frame
        out: pd.DataFrame = transform_frame(self.preprocessor, frame)
        return out

    def predict_frame(self, frame: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        """The model on an already preprocessed pandas batch: a ``predictions`` frame."""
        out = self._predict_pandas(frame, **kwargs)
        if not isinstance(out, pd.DataFrame):
            out = pd.DataFrame({"predictions": list(np.asarray(out))})
        return out.reset_index(drop=True)

    def _predict_pandas(self, data: pd.DataFrame, **kwargs: Any) -> pd.DataFrame | np.ndarray:
        raise NotImplementedError


def _with_preprocessor(build: Any) -> Any:
    @functools.wraps(build)
    def from_checkpoint(cls: Any, checkpoint: Checkpoint, *args: Any, **kwargs: Any) -> Any:
        predictor = build(cls, checkpoint, *args, **kwargs)
        if isinstance(predictor, Predictor) and predictor.preprocessor is None:
            predictor.preprocessor = checkpoint.get_preprocessor()
        return predictor

    from_checkpoint._adds_preprocessor = True  # type: ignore[attr-defined]
    return from_checkpoint


def _to_frame(data: pd.DataFrame | np.ndarray | dict[str, Any]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        return pd.DataFrame({k: list(v) if np.ndim(v) > 1 else v for k, v in data.items()})
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])])


def _to_array(out: pd.DataFrame) -> np.ndarray:
    """One prediction column as an array (a column of arrays stacked), several as 2-D."""
    if out.shape[1] == 1:
        col = out.iloc[:, 0].to_numpy()
        if len(col) and isinstance(col[0], (np.ndarray, list)):
            return np.stack([np.asarray(v) for v in col])
        return col
    return out.to_numpy()


__all__ = ["Predictor"]
