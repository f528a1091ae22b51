"""BatchPredictor: a checkpoint's model applied to a Ray Dataset (the AIR shape).

Two ways to score, chosen per call (``fast_path="auto"``):

- **In this process** (the fast path) when the whole job is cheap: the input is
  materialized, its blocks are read from the object store, the first rows are scored
  as a probe, and when the estimate for all rows stays under ``FAST_PATH_BUDGET_S``
  (and the data under ``FAST_PATH_MAX_BYTES``) the rest is scored here too, in large
  slices, with one predictor restored once per process and reused by later calls
  (``batch_inprocess``). Starting an actor pool costs seconds (new processes importing
  the framework and restoring the model), far more than scoring a few hundred thousand
  rows with a small model.
- **On an actor pool** (Ray Data ``map_batches`` with actors) otherwise. The input is
  materialized first ("data first, then reservations", docs/runtime.md), then the pool
  scales to the cluster as in AIR: from ``min_scoring_workers`` (1) up to what fits
  while one whole CPU stays free for the Ray Data tasks that consume the predictions
  (``max_scoring_workers`` caps it). Each actor takes 1 CPU on a cluster with room,
  else half a CPU; with ``num_gpus_per_worker`` each takes its GPUs and the pool is
  capped by the GPUs there are.

Either way the output keeps the input's row order and ``keep_columns``, and the
checkpoint's preprocessor is applied before ``feature_columns`` are selected.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

import pandas as pd

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.resources import NESTED_RESERVE_CPUS, free_for_nested
from airflowdsl.errors import ResourceError
from airflowdsl.train.batch_inprocess import (
    FAST_PATH_BUDGET_S,
    FAST_PATH_MAX_BYTES,
    as_dataset,
    score_frame,
    score_in_process,
)
from airflowdsl.train.predictor import Predictor

_PREDICTORS: OrderedDict[tuple[Any, ...], Predictor] = OrderedDict()
_PREDICTORS_KEPT = 4


def restore(checkpoint: Checkpoint, predictor_cls: type[Predictor],
            predictor_kwargs: dict[str, Any]) -> Predictor:
    """``predictor_cls.from_checkpoint(checkpoint, **predictor_kwargs)``, restored once per
    process and checkpoint (the last few are kept; a rewritten checkpoint is restored
    again)."""
    import os

    try:
        stamp = os.stat(checkpoint.path).st_mtime_ns
        key: tuple[Any, ...] | None = (checkpoint.path, stamp, predictor_cls,
                                       repr(sorted(predictor_kwargs.items())))
    except OSError:
        key = None
    if key is not None and key in _PREDICTORS:
        _PREDICTORS.move_to_end(key)
        return _PREDICTORS[key]
    predictor = predictor_cls.from_checkpoint(checkpoint, **predictor_kwargs)
    if key is not None:
        _PREDICTORS[key] = predictor
        while len(_PREDICTORS) > _PREDICTORS_KEPT:
            _PREDICTORS.popitem(last=False)
    return predictor


class _ScoringActor:
    """One Ray Data actor: restores the predictor once, then scores batches.

    A checkpoint that came from the artifact store or a storage URI is fetched from there
    by the actor, on its node, into a temp folder removed once the model is restored
    (``Checkpoint.as_directory``); the step's own copy is a path on another node."""

    def __init__(self, checkpoint: Checkpoint, predictor_cls: type[Predictor],
                 predictor_kwargs: dict[str, Any], feature_columns: list[str] | None,
                 keep_columns: list[str] | None, predict_kwargs: dict[str, Any]) -> None:
        with checkpoint.as_directory() as local:
            self.predictor = restore(type(checkpoint).from_directory(local), predictor_cls,
                                     predictor_kwargs)
        self.options: dict[str, Any] = {"feature_columns": feature_columns,
                                        "keep_columns": keep_columns,
                                        "predict_kwargs": predict_kwargs}

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return score_frame(self.predictor, batch, **self.options)


class _PandasUDFPredictor(Predictor):
    """``BatchPredictor.from_pandas_udf(fn)``: ``fn(DataFrame) -> DataFrame`` as a model."""

    def __init__(self, fn: Callable[[pd.DataFrame], Any]) -> None:
        self.fn = fn

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, **kwargs: Any) -> _PandasUDFPredictor:
        return cls(kwargs["pandas_udf"])

    def _predict_pandas(self, data: pd.DataFrame, **kwargs: Any) -> Any:
        return self.fn(data, **kwargs)


class BatchPredictor:
    """``BatchPredictor.from_checkpoint(ckpt, XGBoostPredictor).predict(ds)`` (the AIR shape)."""

    def __init__(self, checkpoint: Checkpoint, predictor_cls: type[Predictor],
                 **predictor_kwargs: Any) -> None:
        if isinstance(predictor_cls, type) and issubclass(predictor_cls, Predictor):
            predictor_cls.check_from_checkpoint(predictor_kwargs)  # now, not in an actor
        self.checkpoint = checkpoint
        self.predictor_cls = predictor_cls
        self.predictor_kwargs = predictor_kwargs
        self.last_path: Literal["process", "pool"] | None = None  # where the last call scored

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, predictor_cls: type[Predictor],
                        **predictor_kwargs: Any) -> BatchPredictor:
        return cls(checkpoint, predictor_cls, **predictor_kwargs)

    @classmethod
    def from_pandas_udf(cls, pandas_udf: Callable[[pd.DataFrame], Any]) -> BatchPredictor:
        """A BatchPredictor whose "model" is ``pandas_udf(batch) -> DataFrame`` (AIR)."""
        return cls(Checkpoint.from_dict({"pandas_udf": True}), _PandasUDFPredictor,
                   pandas_udf=pandas_udf)

    def get_preprocessor(self) -> Any:
        return self.checkpoint.get_preprocessor()

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
        separate_gpu_stage: bool = True,
        ray_remote_args: dict[str, Any] | None = None,
        fast_path: bool | Literal["auto"] = "auto",
        **predict_kwargs: Any,
    ) -> Any:
        """Score a ``ray.data.Dataset``; returns a Dataset of predictions (plus
        ``keep_columns``) in the input's row order.

        Args:
            data: the rows to score (a Ray Dataset; a pandas DataFrame is accepted too).
            feature_columns: the columns the model sees (after the preprocessor).
            keep_columns: input columns copied to the output next to the predictions.
            batch_size: rows per batch given to the model.
            min_scoring_workers / max_scoring_workers: the actor pool's bounds (the
                maximum defaults to what fits in the cluster, one CPU left free).
            num_cpus_per_worker / num_gpus_per_worker: each actor's resources.
            separate_gpu_stage: accepted for AIR compatibility (preprocessing runs in
                the scoring actor).
            ray_remote_args: more Ray options for the scoring actors.
            fast_path: ``"auto"`` (score here when cheap), True (always here), False
                (always on an actor pool).
            **predict_kwargs: passed to the predictor's ``predict``.

        Raises:
            TypeError: ``predict_kwargs`` the predictor's ``predict`` does not take.
            ResourceError: the actors ask for more than the cluster has.
        """
        import ray.data

        if isinstance(self.predictor_cls, type) and issubclass(self.predictor_cls, Predictor):
            self.predictor_cls.check_predict(predict_kwargs)  # now, not in an actor
        if isinstance(data, pd.DataFrame):
            data = ray.data.from_pandas(data)
        options = {"feature_columns": feature_columns, "keep_columns": keep_columns,
                   "predict_kwargs": predict_kwargs}
        if not num_gpus_per_worker and fast_path is not False:
            data = _materialized(data)  # data first, then reservations
            predictor = restore(self.checkpoint, self.predictor_cls, self.predictor_kwargs)
            frame = score_in_process(data, predictor, batch_size=batch_size, options=options,
                                     force=fast_path is True)
            if frame is not None:
                self.last_path = "process"
                return as_dataset(frame)
        self.last_path = "pool"
        return self._score_on_pool(
            data, batch_size=batch_size, options=options, min_workers=min_scoring_workers,
            max_workers=max_scoring_workers, num_cpus=num_cpus_per_worker,
            num_gpus=num_gpus_per_worker, ray_remote_args=ray_remote_args or {})

    def predict_pipelined(self, data: Any, *, blocks_per_window: int | None = None,
                          bytes_per_window: int | None = None, **kwargs: Any) -> Any:
        """AIR's streaming prediction: a lazy Dataset that scores on an actor pool as it
        is consumed (Ray Data streams; the window arguments are accepted and unused)."""
        import ray.data

        if isinstance(data, pd.DataFrame):
            data = ray.data.from_pandas(data)
        kwargs.pop("fast_path", None)
        predict_kwargs = {k: v for k, v in kwargs.items() if k not in _POOL_ARGS}
        pool = {k: v for k, v in kwargs.items() if k in _POOL_ARGS}
        options = {"feature_columns": pool.pop("feature_columns", None),
                   "keep_columns": pool.pop("keep_columns", None),
                   "predict_kwargs": predict_kwargs}
        if isinstance(self.predictor_cls, type) and issubclass(self.predictor_cls, Predictor):
            self.predictor_cls.check_predict(predict_kwargs)
        self.last_path = "pool"
        return self._score_on_pool(
            data, batch_size=pool.get("batch_size", 4096), options=options,
            min_workers=pool.get("min_scoring_workers", 1),
            max_workers=pool.get("max_scoring_workers"),
            num_cpus=pool.get("num_cpus_per_worker"),
            num_gpus=pool.get("num_gpus_per_worker", 0),
            ray_remote_args=pool.get("ray_remote_args") or {}, materialize=False)

    # --- on an actor pool ---------------------------------------------------------------
    def _score_on_pool(self, data: Any, *, batch_size: int, options: dict[str, Any],
                       min_workers: int, max_workers: int | None, num_cpus: float | None,
                       num_gpus: float, ray_remote_args: dict[str, Any],
                       materialize: bool = True) -> Any:
        if materialize:
            data = _materialized(data)
        cpus, low, high = pool_size(free_for_nested(), num_cpus=num_cpus, num_gpus=num_gpus,
                                    min_workers=min_workers, max_workers=max_workers)
        import ray.data

        out = data.map_batches(
            _ScoringActor,
            batch_format="pandas",
            batch_size=batch_size,
            fn_constructor_args=(self.checkpoint, self.predictor_cls, self.predictor_kwargs,
                                 options["feature_columns"], options["keep_columns"],
                                 options["predict_kwargs"]),
            compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high),
            num_cpus=cpus,
            num_gpus=num_gpus or None,
            **ray_remote_args,
        )
        out.context.execution_options.preserve_order = True
        # pandas blocks, as the in-process path gives: predictions and kept columns read
        # back numpy-backed (AIR's shape; Ray >= 2.56 reads Arrow blocks as ArrowDtype,
        # where ``(pred > 0.5) == label`` is False for every row)
        if hasattr(out.context, "batch_to_block_arrow_format"):
            out.context.batch_to_block_arrow_format = False
        return out


_POOL_ARGS = frozenset({"feature_columns", "keep_columns", "batch_size", "min_scoring_workers",
                        "max_scoring_workers", "num_cpus_per_worker", "num_gpus_per_worker",
                        "separate_gpu_stage", "ray_remote_args"})


def pool_size(cluster: dict[str, float], *, num_cpus: float | None, num_gpus: float,
              min_workers: int, max_workers: int | None) -> tuple[float, int, int]:
    """``(CPUs per actor, min actors, max actors)`` for a pool on ``cluster`` (what the
    calling task leaves): 1 CPU per actor where the cluster has room, else 0.5; as many
    actors as fit with one whole CPU left free (at least 1), capped by ``max_workers``
    and, with GPUs, by the GPUs there are. Raises ``ResourceError`` when even
    ``min_workers`` actors can never fit."""
    total_cpus = cluster.get("CPU", 0.0)
    spare = max(total_cpus - NESTED_RESERVE_CPUS, 0.0)
    cpus = num_cpus if num_cpus is not None else (1.0 if spare >= 2 else 0.5)
    fits = math.floor(spare / cpus + 1e-9) if cpus > 0 else max(min_workers, 1)
    if num_gpus:
        gpus = cluster.get("GPU", 0.0)
        if gpus < num_gpus:
            raise ResourceError(f"BatchPredictor asks for {num_gpus:g} GPU per scoring worker; "
                                f"the cluster has {gpus:g} GPU")
        fits = min(fits, math.floor(gpus / num_gpus + 1e-9)) if cpus > 0 else \
            math.floor(gpus / num_gpus + 1e-9)
    if cpus > total_cpus:
        raise ResourceError(f"BatchPredictor asks for {cpus:g} CPU per scoring worker; the "
                            f"cluster has {total_cpus:g} CPU")
    high = max(fits, 1)
    if max_workers is not None:
        high = min(high, max_workers)
    low = max(1, min(min_workers, high))
    return cpus, low, max(low, high)


def _materialized(data: Any) -> Any:
    from ray.data.dataset import MaterializedDataset

    return data if isinstance(data, MaterializedDataset) else data.materialize()


__all__ = ["FAST_PATH_BUDGET_S", "FAST_PATH_MAX_BYTES", "BatchPredictor", "pool_size",
           "restore", "score_frame"]
