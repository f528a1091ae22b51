"""scikit-learn on the shared runtime: ``SklearnTrainer``, ``SklearnCheckpoint``, ``SklearnPredictor``.

Not data-parallel: the estimator is fitted once, in the calling process (local mode,
``num_workers=0``), on the whole ``train`` dataset materialized to pandas; only the
cross-validation folds (and, on a multi-node cluster, the estimator's own ``n_jobs``)
may go out to Ray — see ``sklearn_parallel`` for when. scikit-learn is imported lazily.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import time
from typing import Any

import cloudpickle
import pandas as pd

from airflowdsl.air import session as air_session
from airflowdsl.air.checkpoint import Checkpoint, new_tempdir
from airflowdsl.air.config import RunConfig, ScalingConfig, scaling_config_from
from airflowdsl.train.predictor import Predictor, check_keywords
from airflowdsl.train.trainer import DataParallelTrainer, accepted

INSTALL_HINT = "scikit-learn is not installed: pip install 'airflowdsl[sklearn]'"
MODEL_FILE = "model.pkl"
#: a column with this name in ``train`` is passed as ``groups`` to the cv splitter (as in AIR)
GROUPS_COLUMN = "cv_groups"


def require_sklearn() -> None:
    if importlib.util.find_spec("sklearn") is None:
        raise ImportError(INSTALL_HINT)


class SklearnCheckpoint(Checkpoint):
    """A fitted estimator pickled (cloudpickle, so local classes load) in ``model.pkl``."""

    @classmethod
    def from_estimator(cls, estimator: Any) -> SklearnCheckpoint:
        path = new_tempdir()
        with open(os.path.join(path, MODEL_FILE), "wb") as fh:
            cloudpickle.dump(estimator, fh)
        return cls(path)

    def get_estimator(self) -> Any:
        with open(os.path.join(self.path, MODEL_FILE), "rb") as fh:
            return cloudpickle.load(fh)

    def get_model(self) -> Any:
        return self.get_estimator()


class SklearnPredictor(Predictor):
    """Scores pandas batches; keeps only the columns the estimator was fitted on when known."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> SklearnPredictor:
        return cls(SklearnCheckpoint.from_checkpoint(checkpoint).get_estimator())

    def _predict_pandas(self, data: pd.DataFrame, feature_columns: list[str] | None = None,
                        num_estimator_jobs: int | None = None, method: str = "predict",
                        **predict_kwargs: Any) -> pd.DataFrame:
        """As AIR: ``feature_columns`` the columns the estimator sees (default: those it
        was fitted on, when known); ``num_estimator_jobs`` its ``n_jobs`` (when it has
        one); ``method`` the estimator method (``"predict_proba"``...);
        ``**predict_kwargs`` passed to that method (checked against its signature)."""
        fn = getattr(self.estimator, method)
        check_keywords(f"SklearnPredictor.predict (extra keywords go to "
                       f"{type(self.estimator).__name__}.{method})", fn, predict_kwargs,
                       skip=1, own=("feature_columns", "num_estimator_jobs", "method"))
        if num_estimator_jobs is not None and "n_jobs" in self.estimator.get_params():
            self.estimator.set_params(n_jobs=num_estimator_jobs)
        names = feature_columns or list(getattr(self.estimator, "feature_names_in_", []))
        if names and (feature_columns or set(names) <= set(data.columns)):
            data = data[names]  # drops the label and any kept columns
        out = fn(data, **predict_kwargs)
        return pd.DataFrame({"predictions": list(out) if out.ndim > 1 else out})


def split_xy(frame: pd.DataFrame, label_column: str) -> tuple[pd.DataFrame, pd.Series, Any]:
    """Features, label and (when present) the ``cv_groups`` column of one frame."""
    if label_column not in frame.columns:
        raise KeyError(f"label_column {label_column!r} is not a column of the dataset "
                       f"(columns: {list(frame.columns)})")
    groups = frame[GROUPS_COLUMN].to_numpy() if GROUPS_COLUMN in frame.columns else None
    features = frame.drop(columns=[c for c in (label_column, GROUPS_COLUMN) if c in frame.columns])
    return features, frame[label_column], groups


def to_pandas(shard: Any) -> pd.DataFrame:
    """A whole ``DataIterator`` (or DataFrame) as one DataFrame, in row order."""
    if isinstance(shard, pd.DataFrame):
        return shard
    parts = list(shard.iter_batches(batch_format="pandas", batch_size=None))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _named_scores(prefix: str, score: Any) -> dict[str, Any]:
    """``<prefix>test_score``, or ``<prefix>test_<name>`` per metric of a multi-metric scorer."""
    if isinstance(score, dict):
        return {f"{prefix}test_{name}": float(value) for name, value in score.items()}
    return {f"{prefix}test_score": float(score)}


def check_fit_params(estimator: Any, fit_params: dict[str, Any]) -> None:
    """Unknown keywords fail here, not in ``estimator.fit`` on a worker: each must be an
    argument of ``estimator.fit`` (unless it takes ``**kwargs``, as a Pipeline does)."""
    fit = getattr(estimator, "fit", None)
    if not fit_params or fit is None:
        return
    params = inspect.signature(fit).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(fit_params) - set(params) | set(fit_params) & {"X", "y"})
    if unknown:
        fit_args = ", ".join(n for n in params if n not in ("X", "y"))
        raise TypeError(
            f"SklearnTrainer got unknown keyword argument(s) {', '.join(unknown)}; it takes: "
            f"{accepted(SklearnTrainer)} and {type(estimator).__name__}.fit arguments: "
            f"{fit_args or '(none)'}")


class SklearnTrainer(DataParallelTrainer):
    """Fits a clone of ``estimator`` (with ``params``) on ``train``, scores it, cross-validates.

    Reports once: ``fit_time``, ``<dataset>/test_score`` and ``<dataset>/score_time`` for
    every dataset but ``train``, and with ``cv`` ``cv/test_score`` (per fold),
    ``cv/test_score_mean``/``_std`` (likewise ``fit_time``/``score_time``) and
    ``cv/parallel`` (``"ray"`` or ``"local"``), with a ``SklearnCheckpoint``.
    """

    split_datasets = ()  # one place sees every row

    def __init__(
        self,
        *,
        estimator: Any,
        datasets: dict[str, Any],
        label_column: str,
        params: dict[str, Any] | None = None,
        scoring: Any = None,
        cv: Any = None,
        parallelize_cv: bool | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        preprocessor: Any = None,
        **fit_params: Any,
    ) -> None:
        require_sklearn()
        check_fit_params(estimator, fit_params)
        if "train" not in (datasets or {}):
            raise KeyError("SklearnTrainer needs datasets['train']")
        scaling = scaling_config_from(scaling_config, default=ScalingConfig(num_workers=0))
        if scaling.num_workers > 1:
            raise ValueError("SklearnTrainer is not distributed (one estimator, one process): use "
                             "ScalingConfig(trainer_resources=...) instead of num_workers > 1")
        self.estimator = estimator
        self.label_column = label_column
        self.params = dict(params or {})
        self.scoring = scoring
        self.cv = cv
        self.parallelize_cv = parallelize_cv
        self.fit_params = fit_params
        for ds in datasets.values():  # cv folds must be reproducible: keep the row order
            if hasattr(ds, "context"):
                ds.context.execution_options.preserve_order = True
        super().__init__(self._train_loop, run_config=run_config, datasets=datasets,
                         scaling_config=ScalingConfig(num_workers=0,
                                                      trainer_resources=scaling.trainer_resources),
                         preprocessor=preprocessor)

    def _train_loop(self) -> None:
        from sklearn.base import clone
        from sklearn.metrics import check_scoring

        from airflowdsl.train import sklearn_parallel

        frames = {name: to_pandas(air_session.get_dataset_shard(name)) for name in self.datasets}
        x_train, y_train, groups = split_xy(frames.pop("train"), self.label_column)
        estimator = clone(self.estimator).set_params(**self.params)
        unfitted = clone(estimator)
        with sklearn_parallel.joblib_backend(estimator):
            start = time.perf_counter()
            estimator.fit(x_train, y_train, **self.fit_params)
            metrics: dict[str, Any] = {"fit_time": time.perf_counter() - start}
            scorer = check_scoring(estimator, scoring=self.scoring)
            for name, frame in frames.items():
                x, y, _ = split_xy(frame, self.label_column)
                start = time.perf_counter()
                metrics.update(_named_scores(f"{name}/", scorer(estimator, x, y)))
                metrics[f"{name}/score_time"] = time.perf_counter() - start
        if self.cv is not None:
            metrics.update(sklearn_parallel.cross_validate(
                unfitted, x_train, y_train, groups=groups, cv=self.cv, scoring=self.scoring,
                fit_params=self.fit_params, parallelize=self.parallelize_cv,
                fit_time=metrics["fit_time"]))
        air_session.report(metrics, checkpoint=SklearnCheckpoint.from_estimator(estimator))


__all__ = ["SklearnCheckpoint", "SklearnPredictor", "SklearnTrainer", "require_sklearn"]
