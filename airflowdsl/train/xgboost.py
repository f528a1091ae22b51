"""XGBoost on the actor group: one model trained across the workers with ``xgboost.collective``.

The driver starts a ``RabitTracker``; each worker joins it inside a
``CommunicatorContext`` and boosts on its shard of ``datasets["train"]``. Every other
dataset is given whole to each worker and evaluated each round; xgboost allreduces
the metrics, so ``train-*`` covers the whole training set and eval metrics equal a
single-process evaluation.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import ray

from airflowdsl.air import session
from airflowdsl.train._gbdt import (
    GBDTCheckpoint,
    GBDTPredictor,
    GBDTTrainer,
    RoundReporter,
    default_threads,
    import_in_worker,
    load_splits,
    metric_key,
    plan_rounds,
)
from airflowdsl.train.backend import Backend
from airflowdsl.train.predictor import check_keywords

if TYPE_CHECKING:
    from airflowdsl.air.config import ScalingConfig
    from airflowdsl.train.worker_group import WorkerGroup

log = logging.getLogger(__name__)


class XGBoostCheckpoint(GBDTCheckpoint):
    """``XGBoostCheckpoint.from_model(booster)``; ``get_model()`` returns the ``xgboost.Booster``."""

    MODEL_FILE = "model.ubj"

    @staticmethod
    def _save(model: Any, path: str) -> None:
        model.save_model(path)

    @staticmethod
    def _load(path: str) -> Any:
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(path)
        return booster


class XGBoostPredictor(GBDTPredictor):
    """Scores pandas batches (or, through ``BatchPredictor``, a Dataset) with a Booster."""

    checkpoint_cls = XGBoostCheckpoint

    def _predict_pandas(self, data: pd.DataFrame, feature_columns: list[str] | None = None,
                        dmatrix_kwargs: dict[str, Any] | None = None,
                        **predict_kwargs: Any) -> pd.DataFrame:
        """As AIR: ``feature_columns`` the columns the booster sees (default: those it
        was trained on); ``dmatrix_kwargs`` passed to ``xgboost.DMatrix``;
        ``**predict_kwargs`` passed to ``Booster.predict`` (``output_margin``,
        ``iteration_range``...; an unknown one raises ``TypeError``)."""
        return super()._predict_pandas(data, feature_columns, dmatrix_kwargs=dmatrix_kwargs,
                                       **predict_kwargs)

    @classmethod
    def check_predict(cls, kwargs: dict[str, Any]) -> None:
        import xgboost

        own = ("feature_columns", "dmatrix_kwargs")
        check_keywords("XGBoostPredictor.predict", xgboost.Booster.predict,
                       {k: v for k, v in kwargs.items() if k not in own}, skip=2, own=own)

    def _predict(self, features: pd.DataFrame, dmatrix_kwargs: dict[str, Any] | None = None,
                 **predict_kwargs: Any) -> np.ndarray:
        import xgboost

        matrix = xgboost.DMatrix(features, **(dmatrix_kwargs or {}))
        return np.asarray(self.model.predict(matrix, **predict_kwargs))


class _XGBoostBackend(Backend):
    """Starts the collective's tracker in the driver; workers get its address."""

    def __init__(self) -> None:
        self.tracker: Any = None
        self.args: dict[str, Any] = {}

    def on_start(self, group: WorkerGroup, scaling: ScalingConfig) -> None:
        from xgboost.tracker import RabitTracker

        if len(group) < 2:  # one worker needs no collective
            return
        self.tracker = RabitTracker(n_workers=len(group), host_ip=ray.util.get_node_ip_address(),
                                    sortby="task")
        self.tracker.start()
        self.args = dict(self.tracker.worker_args())

    def session_extras(self, rank: int, scaling: ScalingConfig) -> dict[str, Any]:
        if not self.args:
            return {}
        # sortby="task" + zero-padded task ids: xgboost's rank equals our world rank
        return {"xgboost_collective": {**self.args, "dmlc_task_id": f"{rank:06d}"}}

    def on_shutdown(self, group: WorkerGroup) -> None:
        if self.tracker is not None:
            self.tracker.wait_for(timeout=60)
        self.on_abort(group)

    def on_abort(self, group: WorkerGroup) -> None:
        tracker, self.tracker = self.tracker, None
        if tracker is not None:
            try:
                tracker.free()
            except Exception as exc:  # noqa: BLE001 - workers gone before the tracker ended
                log.debug("xgboost tracker shut down with: %s", exc)


def _rounds_in(path: str) -> int:
    return int(XGBoostCheckpoint(path).get_model().num_boosted_rounds())


def _report_callback(reporter: RoundReporter) -> Any:
    import xgboost

    class _Report(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            reporter.round({metric_key(ds, m): float(np.ravel(v[-1])[0])
                            for ds, metrics in evals_log.items() for m, v in metrics.items()},
                           model)
            return False

    return _Report()


def _train_loop(config: dict[str, Any]) -> None:
    """Each worker: join the collective, build DMatrices, boost, report every round."""
    xgboost = import_in_worker("xgboost")

    splits = load_splits(config["label_column"], config["dmatrix_params"])
    plan = plan_rounds(config, _rounds_in)
    init_model = XGBoostCheckpoint(plan.init_path).get_model() if plan.init_path else None
    features = list(splits["train"].features.columns)
    reporter = RoundReporter(config, plan, lambda model: XGBoostCheckpoint.from_model(
        model, feature_columns=features))
    kwargs = dict(config["train_kwargs"])
    callbacks = [_report_callback(reporter), *(kwargs.pop("callbacks", None) or [])]
    kwargs.setdefault("verbose_eval", False)
    params = default_threads(config["params"], "nthread", ("n_jobs",))
    args = session.get_session().extras.get("xgboost_collective")  # type: ignore[union-attr]
    with xgboost.collective.CommunicatorContext(**args) if args else contextlib.nullcontext():
        dmats = {name: xgboost.DMatrix(s.features, label=s.label, **s.kwargs)
                 for name, s in splits.items()}
        booster = xgboost.train(params, dmats["train"], plan.remaining,
                                evals=[(d, name) for name, d in dmats.items()],
                                xgb_model=init_model, callbacks=callbacks, **kwargs)
        reporter.finish(booster)


class XGBoostTrainer(GBDTTrainer):
    """``XGBoostTrainer(datasets=..., label_column=..., params=..., num_boost_round=10,
    scaling_config=..., run_config=..., dmatrix_params=None, resume_from_checkpoint=None)``.

    ``resume_from_checkpoint`` adds ``num_boost_round`` rounds to the saved model;
    ``dmatrix_params={"train": {"weight": "w"}}`` passes DMatrix arguments per dataset
    (a string names a column); other keyword arguments go to ``xgboost.train``.
    """

    _module = "xgboost"
    _extra = "xgboost"
    _train_loop = staticmethod(_train_loop)
    _loop_sets = frozenset({"params", "dtrain", "num_boost_round", "evals", "xgb_model"})
    backend_cls = _XGBoostBackend


__all__ = ["XGBoostCheckpoint", "XGBoostPredictor", "XGBoostTrainer"]
