"""LightGBM on the actor group: one model trained through LightGBM's own network.

Each worker asks the OS for a free port; the driver builds ``machines="ip:port,..."``
and every worker trains with ``tree_learner="data"``, ``pre_partition=True`` on its
shard of ``datasets["train"]``. A port taken between the probe and LightGBM's bind
("Binding port ... failed") makes ``fit`` try again with new ports.

LightGBM computes metrics on local data only: eval datasets are given whole to every
worker (so theirs are exact); each rank sends its ``train-*`` metrics to rank 0, which
combines them (row-weighted means, exact for the pointwise metrics; see ``combine_metric``).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from airflowdsl.air import session
from airflowdsl.air.result import Result
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
from airflowdsl.train.trainer import TrainingFailedError
from airflowdsl.train.worker_group import free_port

if TYPE_CHECKING:
    from airflowdsl.air.config import ScalingConfig
    from airflowdsl.train.worker_group import WorkerGroup

log = logging.getLogger(__name__)

#: fresh-port attempts after LightGBM could not bind the port it was given
BIND_RETRIES = 2
_BIND_FAILED = "Binding port"
#: metrics LightGBM reports as the sum (not the mean) over rows
_SUM_METRICS = ("gamma_deviance",)
#: metrics that are not a mean over rows: the shards' values are averaged (an approximation)
_RANKING_METRICS = ("auc", "average_precision", "ndcg", "map", "auc_mu")


class LightGBMCheckpoint(GBDTCheckpoint):
    """``LightGBMCheckpoint.from_model(booster)``; ``get_model()`` returns a ``lightgbm.Booster``."""

    MODEL_FILE = "model.txt"

    @staticmethod
    def _save(model: Any, path: str) -> None:
        model.save_model(path)

    @staticmethod
    def _load(path: str) -> Any:
        import lightgbm

        return lightgbm.Booster(model_file=path)


class LightGBMPredictor(GBDTPredictor):
    """Scores pandas batches (or, through ``BatchPredictor``, a Dataset) with a Booster."""

    checkpoint_cls = LightGBMCheckpoint

    def _predict_pandas(self, data: pd.DataFrame, feature_columns: list[str] | None = None,
                        **predict_kwargs: Any) -> pd.DataFrame:
        """As AIR: ``feature_columns`` the columns the booster sees (default: those it
        was trained on); ``**predict_kwargs`` passed to ``lightgbm.Booster.predict``:
        its named parameters (``raw_score``, ``num_iteration``...; any other name raises
        ``TypeError`` rather than becoming an ignored LightGBM parameter)."""
        return super()._predict_pandas(data, feature_columns, **predict_kwargs)

    @classmethod
    def check_predict(cls, kwargs: dict[str, Any]) -> None:
        import lightgbm

        check_keywords("LightGBMPredictor.predict", lightgbm.Booster.predict,
                       {k: v for k, v in kwargs.items() if k != "feature_columns"}, skip=2,
                       own=("feature_columns",), strict=True)

    def _predict(self, features: pd.DataFrame, **predict_kwargs: Any) -> np.ndarray:
        return np.asarray(self.model.predict(features, **predict_kwargs))


def combine_metric(name: str, values: list[tuple[float, int]]) -> float:
    """One metric over all shards from ``(shard value, shard rows)`` pairs."""
    rows = sum(n for _, n in values) or 1
    base = name.split("@")[0]
    if base in _SUM_METRICS:
        return float(sum(v for v, _ in values))
    if base in _RANKING_METRICS:
        return float(np.mean([v for v, _ in values]))
    if base == "rmse":
        return math.sqrt(sum(v * v * n for v, n in values) / rows)
    return float(sum(v * n for v, n in values) / rows)


#: rank 0's process only: round -> rank -> that rank's train metrics (see _Report)
_INBOX: dict[int, dict[int, dict[str, tuple[float, int]]]] = {}
_INBOX_READY = threading.Condition()


def _deliver(rnd: int, rank: int, values: dict[str, tuple[float, int]]) -> None:
    """Runs in rank 0's worker (sent through its actor's ``execute``): file one rank's metrics."""
    with _INBOX_READY:
        _INBOX.setdefault(rnd, {})[rank] = values
        _INBOX_READY.notify_all()


#: How long rank 0 waits for the other ranks' metrics of one round: LightGBM's own
#: default network time-out (``time_out``, 120 minutes), which would stop them first.
GATHER_TIMEOUT_S = 7200.0


def _gather(rnd: int, world_size: int) -> dict[str, float]:
    """Rank 0: wait for every rank's train metrics of round ``rnd`` and combine them."""
    with _INBOX_READY:
        if not _INBOX_READY.wait_for(lambda: len(_INBOX.get(rnd, {})) == world_size,
                                     timeout=GATHER_TIMEOUT_S):
            missing = sorted(set(range(world_size)) - set(_INBOX.get(rnd, {})))
            raise TrainingFailedError(
                f"LightGBM round {rnd}: ranks {missing} sent no train metrics within "
                f"{GATHER_TIMEOUT_S:.0f} s (a rank stopped reporting, e.g. a callback that "
                "ended training on one rank only)")
        by_rank = _INBOX.pop(rnd)
    return {name: combine_metric(name.split("-", 1)[1], [by_rank[r][name] for r in by_rank])
            for name in by_rank[0]}


class _LightGBMBackend(Backend):
    """Free ports from the workers themselves and the machine list; rank 0's actor handle
    lets the other ranks send it their train metrics (no extra process)."""

    def __init__(self) -> None:
        self.ips: list[str] = []
        self.ports: list[int] = []
        self.rank0: Any = None

    def on_start(self, group: WorkerGroup, scaling: ScalingConfig) -> None:
        self.ips = [info["ip"] for info in group.infos]
        self.ports = [int(p) for p in group.execute(free_port)]
        self.rank0 = group.workers[0]

    def session_extras(self, rank: int, scaling: ScalingConfig) -> dict[str, Any]:
        if not self.ports:  # num_workers=0: the loop runs in the driver, alone
            return {}
        machines = ",".join(f"{ip}:{port}" for ip, port in zip(self.ips, self.ports, strict=True))
        network = {"machines": machines, "local_listen_port": self.ports[rank],
                   "num_machines": len(self.ports)}
        return {"lightgbm_network": network, "lightgbm_rank0": self.rank0}


def _rounds_in(path: str) -> int:
    return int(LightGBMCheckpoint(path).get_model().current_iteration())


class _Report:
    """LightGBM callback: ``"<dataset>-<metric>"`` per round, train metrics over all shards."""

    order = 5  # before early stopping (30), which ends the round with an exception

    def __init__(self, reporter: RoundReporter, train_rows: int) -> None:
        self.reporter = reporter
        self.train_rows = train_rows
        self.rank = session.get_world_rank()
        self.size = session.get_world_size()
        self.rank0: Any = session.get_session().extras.get("lightgbm_rank0")  # type: ignore[union-attr]

    def __call__(self, env: Any) -> None:
        metrics = {metric_key(r[0], r[1]): float(r[2]) for r in env.evaluation_result_list or []}
        if self.size > 1:
            local = {k: (v, self.train_rows) for k, v in metrics.items() if k.startswith("train-")}
            if self.rank == 0:
                _deliver(env.iteration, 0, local)
                metrics.update(_gather(env.iteration, self.size))
            else:
                self.rank0.execute.remote(_deliver, env.iteration, self.rank, local)
        self.reporter.round(metrics, env.model)


def _train_loop(config: dict[str, Any]) -> None:
    """Each worker: join LightGBM's network, boost on its shard, report every round."""
    lightgbm = import_in_worker("lightgbm")

    splits = load_splits(config["label_column"], config["dmatrix_params"])
    plan = plan_rounds(config, _rounds_in)
    features = list(splits["train"].features.columns)
    reporter = RoundReporter(config, plan, lambda model: LightGBMCheckpoint.from_model(
        model, feature_columns=features))
    extras = session.get_session().extras  # type: ignore[union-attr]
    params = default_threads(config["params"], "num_threads",
                             ("num_thread", "nthread", "nthreads", "n_jobs"))
    params.setdefault("verbose", -1)
    if session.get_world_size() > 1:
        params.update(extras["lightgbm_network"])
        params.setdefault("tree_learner", "data")
        params["pre_partition"] = True
    sets: dict[str, Any] = {}
    for name, s in splits.items():
        ref = sets.get("train")
        sets[name] = lightgbm.Dataset(s.features, label=s.label, reference=ref, **s.kwargs)
    kwargs = dict(config["train_kwargs"])
    callbacks = [_Report(reporter, len(splits["train"].label)), *(kwargs.pop("callbacks", None) or [])]
    booster = lightgbm.train(params, sets["train"], plan.remaining,
                             valid_sets=list(sets.values()), valid_names=list(sets),
                             init_model=LightGBMCheckpoint(plan.init_path).get_model() if plan.init_path else None,
                             callbacks=callbacks, **kwargs)
    reporter.finish(booster)


class LightGBMTrainer(GBDTTrainer):
    """``LightGBMTrainer(datasets=..., label_column=..., params=..., num_boost_round=10,
    scaling_config=..., run_config=..., dmatrix_params=None, resume_from_checkpoint=None)``.

    ``resume_from_checkpoint`` adds ``num_boost_round`` rounds to the saved model;
    ``dmatrix_params={"train": {"weight": "w"}}`` passes ``lightgbm.Dataset`` arguments per
    dataset (a string names a column); other keyword arguments go to ``lightgbm.train``.
    """

    _module = "lightgbm"
    _extra = "lightgbm"
    _train_loop = staticmethod(_train_loop)
    _loop_sets = frozenset({"params", "train_set", "num_boost_round", "valid_sets",
                            "valid_names", "init_model"})
    backend_cls = _LightGBMBackend

    def fit(self) -> Result:
        """Train; a failed port bind (another process took the port) retries with new ports."""
        for attempt in range(BIND_RETRIES + 1):
            try:
                return super().fit()
            except TrainingFailedError as exc:
                if _BIND_FAILED not in str(exc) or attempt == BIND_RETRIES:
                    raise
                log.warning("LightGBM could not bind its port (attempt %s); retrying with new "
                            "ports", attempt + 1)
                _remove_if_empty(exc.result)
        raise AssertionError("unreachable")


def _remove_if_empty(result: Result | None) -> None:
    """Drop the run directory a bind failure left behind when it holds nothing."""
    if result is not None and result.path and os.path.isdir(result.path) \
            and not os.listdir(result.path):
        shutil.rmtree(result.path, ignore_errors=True)


__all__ = ["LightGBMCheckpoint", "LightGBMPredictor", "LightGBMTrainer", "combine_metric"]
