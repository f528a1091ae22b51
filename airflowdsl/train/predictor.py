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
        impl = cls.__dict__.get("_predict_pandas")
        if impl is not None and "predict" not in cls.__dict__:
            cls.predict = _documented_predict(impl)  # type: ignore[method-assign]

    @classmethod
    def from_checkpoint(cls: type[P], checkpoint: Checkpoint) -> P:
        """The predictor a checkpoint holds; subclasses add their own keywords (fixed,
        documented: an unknown one raises ``TypeError``)."""
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

    @classmethod
    def check_predict(cls, kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` when ``predict(data, **kwargs)`` cannot take ``kwargs``,
        naming the keywords it takes (``predict`` and BatchPredictor call this before
        scoring). Subclasses that pass extra keywords on to a library may check those
        too."""
        check_keywords(f"{cls.__name__}.predict", cls._predict_pandas, kwargs, skip=2)

    def get_preprocessor(self) -> Any:
        """The fitted preprocessor applied before the model (None: none)."""
        return self.preprocessor

    def set_preprocessor(self, preprocessor: Any) -> None:
        self.preprocessor = preprocessor

    def predict(self, data: pd.DataFrame | np.ndarray | dict[str, Any], **kwargs: Any) -> Any:
        """Predictions for a batch, in the input's format (as AIR): a DataFrame with a
        ``predictions`` column for a DataFrame, an array for an array, a dict of arrays
        for a dict. The checkpoint's preprocessor is applied first."""
        self.check_predict(kwargs)
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

    def _predict_pandas(self, data: pd.DataFrame) -> pd.DataFrame | np.ndarray:
        """The model on a preprocessed batch; subclasses add their ``predict`` keywords
        here (``predict`` shows this signature and checks keywords against it)."""
        raise NotImplementedError


def check_keywords(name: str, fn: Any, kwargs: dict[str, Any], *, skip: int = 0,
                   own: tuple[str, ...] = (), strict: bool = False) -> None:
    """``TypeError`` naming the accepted keywords (``own`` first, then ``fn``'s) when
    ``fn(<skip positionals>, **kwargs)`` cannot bind. A ``fn`` with ``**kwargs`` takes
    any keyword unless ``strict`` (then only its named parameters)."""
    if not kwargs:
        return
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())
    if not strict and any(p.kind is p.VAR_KEYWORD for p in params):
        return
    named = [p.name for p in params[skip:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(kwargs) - set(named))
    if unknown:
        takes = [*own, *named]
        raise TypeError(f"{name}() got unexpected keyword argument(s) {unknown}; "
                        f"it takes {takes or 'no keyword arguments'}")


def _documented_predict(impl: Any) -> Any:
    """``Predictor.predict`` with the signature and doc of a subclass's ``_predict_pandas``
    (what ``help()`` and ``inspect.signature`` show: the keywords it takes)."""
    def predict(self: Predictor, data: Any, **kwargs: Any) -> Any:
        return Predictor.predict(self, data, **kwargs)

    predict.__signature__ = inspect.signature(impl)  # type: ignore[attr-defined]
    predict.__doc__ = f"{inspect.getdoc(Predictor.predict)}\n\n{inspect.getdoc(impl) or ''}"
    predict.__qualname__ = impl.__qualname__.replace("_predict_pandas", "predict")
    return predict


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


__all__ = ["Predictor", "check_keywords"]
