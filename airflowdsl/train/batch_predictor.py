"""BatchPredictor: a checkpoint's model applied to a Ray Dataset with ``map_batches``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.train.predictor import Predictor


class _ScoringActor:
    """One Ray Data actor: restores the predictor once, then scores batches."""

    def __init__(self, checkpoint: Checkpoint, predictor_cls: type[Predictor],
                 predictor_kwargs: dict[str, Any], feature_columns: list[str] | None,
                 keep_columns: list[str] | None, predict_kwargs: dict[str, Any]) -> None:
        self.predictor = predictor_cls.from_checkpoint(checkpoint, **predictor_kwargs)
        self.feature_columns = feature_columns
        self.keep_columns = keep_columns or []
        self.predict_kwargs = predict_kwargs

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        features = batch[self.feature_columns] if self.feature_columns else batch
        out = self.predictor.predict(features, **self.predict_kwargs)
        for col in self.keep_columns:
            out[col] = batch[col].to_numpy()
        return out


class BatchPredictor:
    """``BatchPredictor.from_checkpoint(ckpt, XGBoostPredictor).predict(ds)`` (the AIR shape)."""

    def __init__(self, checkpoint: Checkpoint, predictor_cls: type[Predictor], **predictor_kwargs: Any) -> None:
        self.checkpoint = checkpoint
        self.predictor_cls = predictor_cls
        self.predictor_kwargs = predictor_kwargs

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, predictor_cls: type[Predictor],
                        **predictor_kwargs: Any) -> BatchPredictor:
        return cls(checkpoint, predictor_cls, **predictor_kwargs)

    def predict(
        self,
        data: Any,
        *,
        feature_columns: list[str] | None = None,
        keep_columns: list[str] | None = None,
        batch_size: int = 4096,
        min_scoring_workers: int = 1,
        max_scoring_workers: int | None = None,
        num_cpus_per_worker: float | None = None,
        num_gpus_per_worker: float = 0,
        **predict_kwargs: Any,
    ) -> Any:
        """Score a ``ray.data.Dataset``; returns a Dataset of predictions (plus kept columns).

        Scoring actors take half a CPU each by default, so an actor pool can never claim
        every CPU of a small cluster while the read operator still needs one.
        """
        return data.map_batches(
            _ScoringActor,
            batch_format="pandas",
            batch_size=batch_size,
            fn_constructor_args=(self.checkpoint, self.predictor_cls, self.predictor_kwargs,
                                 feature_columns, keep_columns, predict_kwargs),
            concurrency=(min_scoring_workers, max_scoring_workers or max(min_scoring_workers, 1)),
            num_cpus=0.5 if num_cpus_per_worker is None else num_cpus_per_worker,
            num_gpus=num_gpus_per_worker,
        )


__all__ = ["BatchPredictor"]
