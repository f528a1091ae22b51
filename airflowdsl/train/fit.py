"""The fit controller: attempts, report collection, fault tolerance, the Result."""

from __future__ import annotations

import copy
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import ray

from airflowdsl.air import progress
from airflowdsl.air import session as air_session
from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import FailureConfig, RunConfig, ScalingConfig
from airflowdsl.air.resources import free_for_nested
from airflowdsl.air.result import Result
from airflowdsl.air.search import unresolved
from airflowdsl.air.shard import DatasetShard
from airflowdsl.air.storage import is_uri, options_for
from airflowdsl.errors import TrainingFailedError
from airflowdsl.train import preprocess
from airflowdsl.train.backend import Backend
from airflowdsl.train.checkpoints import CheckpointManager
from airflowdsl.train.worker_group import WorkerGroup, call_loop

log = logging.getLogger(__name__)

POLL_S = 0.5


class FitTrainer(Protocol):
    """What the fit controller reads of a trainer (``trainer.DataParallelTrainer`` is one)."""

    train_loop_per_worker: Callable[..., Any]
    train_loop_config: dict[str, Any] | None
    scaling_config: ScalingConfig
    run_config: RunConfig
    datasets: dict[str, Any]
    resume_from_checkpoint: Checkpoint | None
    split_datasets: tuple[str, ...]
    preprocessor: Any

    def make_backend(self) -> Backend: ...


class _WorkerFailure(Exception):
    def __init__(self, rank: int, detail: str) -> None:
        super().__init__(detail)
        self.rank = rank
        self.detail = detail


class _FitState:
    """What survives a restart of the worker group: reports, checkpoints, iteration."""

    def __init__(self, trainer: FitTrainer, preprocessor: Any = None) -> None:
        rc = trainer.run_config
        self.preprocessor = preprocessor
        name = rc.name or f"{type(trainer).__name__}_{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:6]}"
        self.name = name
        storage = rc.resolved_storage_path()  # a URI: the ranks upload checkpoints there
        self.storage_options = options_for(storage)
        self.run_dir = progress.trainer_dir(storage, name)  # per key in a step
        if not is_uri(self.run_dir):
            os.makedirs(self.run_dir, exist_ok=True)
        self.manager = CheckpointManager(self.run_dir, rc.checkpoint_config,
                                         storage_options=self.storage_options)
        previous = self.manager.adopt_existing()
        self.resume = trainer.resume_from_checkpoint or previous
        existing = self.manager.existing()
        self.iteration = existing[-1][0] if existing else 0
        self.history: list[dict[str, Any]] = []
        self.started = time.time()
        self.callbacks = list(rc.callbacks or [])

    def on_report(self, record: dict[str, Any]) -> None:
        """A rank-0 report: history row, checkpoint bookkeeping, ``RunConfig.callbacks``."""
        metrics = dict(record["metrics"])
        self.iteration = record["training_iteration"]
        row = {**metrics, "training_iteration": self.iteration,
               "time_total_s": time.time() - self.started}
        self.history.append(row)
        ckpt = None
        if record.get("checkpoint_path"):
            ckpt = Checkpoint(record["checkpoint_path"], storage_options=self.storage_options)
            if self.preprocessor is not None:  # AIR: the model and its preprocessor travel together
                ckpt.set_preprocessor(self.preprocessor)
            self.manager.register(ckpt, row)
        for cb in self.callbacks:
            if hasattr(cb, "on_report"):
                cb.on_report(row, ckpt)
        progress.publish(progress_text(self.iteration, metrics))
        progress.record("report", {**row, "checkpoint": ckpt.location if ckpt else None})

    def rewind(self) -> None:
        """Before a restart: forget reports after the checkpoint we resume from."""
        latest = self.manager.latest
        self.resume = latest or self.resume
        upto = latest.get_metadata().get("training_iteration", 0) if latest else 0
        self.history = [row for row in self.history if row["training_iteration"] <= upto]
        self.iteration = upto

    def result(self, error: BaseException | None = None) -> Result:
        ckpt = self.manager.best() if self.manager.kept else None
        return Result(
            metrics=dict(self.history[-1]) if self.history else {},
            checkpoint=ckpt,
            error=error,
            path=self.run_dir,
            metrics_history=list(self.history),
            best_checkpoints=self.manager.ranked(),
        )


def progress_text(iteration: int, metrics: dict[str, Any]) -> str:
    """``iter 3 loss=0.41 acc=0.9``: the iteration and up to three numeric metrics."""
    shown = [f"{k}={v:.4g}" for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)][:3]
    return " ".join([f"iter {iteration}", *shown])


def run_fit(trainer: FitTrainer) -> Result:
    """Run one fit: attempts and restarts, reports to ``run_config.callbacks``, the Result.

    Args:
        trainer: the trainer to fit (its loop, configs, datasets and backend).

    Returns:
        The ``Result``: last metrics, best checkpoint, history.

    Raises:
        TrainingFailedError: a worker failed more often than ``FailureConfig`` allows, or
            the workers reported an unequal number of times.
    """
    unresolved(trainer.scaling_config, owner=type(trainer).__name__)
    trainer, fitted = _preprocessed(trainer)
    state = _FitState(trainer, fitted)
    failure_config = trainer.run_config.failure_config or FailureConfig()
    if trainer.scaling_config.num_workers == 0:
        _run_local(trainer, state)
        return state.result()
    failures = 0
    while True:
        try:
            _run_group(trainer, state)
            return state.result()
        except _WorkerFailure as failure:
            failures += 1
            if not failure_config.allows(failures):
                msg = (f"{type(trainer).__name__} failed: worker rank {failure.rank}: "
                       f"{failure.detail}")
                if failures > 1:
                    msg += f"\n(after {failures - 1} restart(s); FailureConfig.max_failures reached)"
                raise TrainingFailedError(msg, result=state.result()) from None
            log.warning("worker rank %s failed (%s); restarting the group from the latest "
                        "checkpoint (failure %s)", failure.rank, failure.detail.splitlines()[-1],
                        failures)
            state.rewind()


def _preprocessed(trainer: FitTrainer) -> tuple[FitTrainer, Any]:
    """The trainer seen through its preprocessor: fitted on ``datasets["train"]`` (unless
    fitted already) and applied to every dataset, lazily (``_shard_datasets`` then
    materializes them before any actor is placed). Returns ``(trainer, fitted)``."""
    fitted, datasets = preprocess.prepare(getattr(trainer, "preprocessor", None),
                                          trainer.datasets)
    if datasets is trainer.datasets:
        return trainer, fitted
    view = copy.copy(trainer)  # the user's trainer keeps its raw datasets
    view.datasets = datasets
    return view, fitted


def _session_ctx(state: _FitState, trainer: FitTrainer, *, rank: int, size: int,
                 info: dict[str, Any], shards: dict[str, Any], extras: dict[str, Any]
                 ) -> dict[str, Any]:
    return {
        "world_rank": rank, "world_size": size,
        "local_rank": info.get("local_rank", 0),
        "local_world_size": info.get("local_world_size", 1),
        "node_rank": info.get("node_rank", 0),
        "run_dir": state.run_dir, "dataset_shards": shards, "checkpoint": state.resume,
        "trial_name": state.name, "config": dict(trainer.train_loop_config or {}),
        "start_iteration": state.iteration, "extras": extras,
        "storage_options": state.storage_options,
    }


def _run_local(trainer: FitTrainer, state: _FitState) -> None:
    """num_workers=0: the loop runs here, in this process (debugger-friendly)."""
    shards = {name: ds.iterator() for name, ds in trainer.datasets.items()}
    backend = trainer.make_backend()
    ctx = _session_ctx(state, trainer, rank=0, size=1, info={}, shards=shards,
                       extras=backend.session_extras(0, trainer.scaling_config))
    with air_session.installed(air_session.WorkerSession(**ctx, sink=state.on_report)):
        call_loop(trainer.train_loop_per_worker, trainer.train_loop_config)


def _shard_datasets(trainer: FitTrainer, n: int) -> list[dict[str, Any]]:
    """Data first, then reservations (docs/runtime.md, "Resource model"): every dataset
    is materialized here, before the worker group is placed, so training never waits on
    a Ray Data task while its actors hold the CPUs that task needs; ``split_datasets``
    are then split in this process (milliseconds, no SplitCoordinator), the others are
    given whole to every worker."""
    per_rank: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, ds in trainer.datasets.items():
        ready = ds if _is_materialized(ds) else ds.materialize()
        parts = ready.split(n, equal=True) if name in trainer.split_datasets else [ready] * n
        for rank, part in enumerate(parts):  # batched in the worker (air/shard.py)
            per_rank[rank][name] = DatasetShard.of_materialized(part)
    return per_rank


def _is_materialized(ds: Any) -> bool:
    from ray.data.dataset import MaterializedDataset

    return isinstance(ds, MaterializedDataset)


def _run_group(trainer: FitTrainer, state: _FitState) -> None:
    scaling = trainer.scaling_config
    n = scaling.num_workers
    resources = scaling.worker_resources(cluster_cpus=free_for_nested().get("CPU", 1.0))
    backend = trainer.make_backend()
    shards = _shard_datasets(trainer, n)
    group = WorkerGroup(num_workers=n, resources=resources,
                        placement_strategy=scaling.placement_strategy, env=backend.worker_env,
                        preimport=backend.worker_imports)
    try:
        backend.on_start(group, scaling)
        ray.get([
            worker.start.remote(trainer.train_loop_per_worker, trainer.train_loop_config,
                                _session_ctx(state, trainer, rank=rank, size=n,
                                             info=group.infos[rank], shards=shards[rank],
                                             extras=backend.session_extras(rank, scaling)))
            for rank, worker in enumerate(group.workers)
        ])
        _collect(group, state)
        backend.on_shutdown(group)
    except BaseException:
        backend.on_abort(group)
        raise
    finally:
        group.shutdown()


def _collect(group: WorkerGroup, state: _FitState) -> None:
    """Poll every worker until all are done; the first error or death fails at once."""
    counts = [0] * len(group)
    done = [False] * len(group)
    pending = {w.poll.remote(POLL_S): rank for rank, w in enumerate(group.workers)}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            rank = pending.pop(ref)
            try:
                records = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                raise _WorkerFailure(rank, f"the worker process died ({type(exc).__name__}: "
                                           f"{str(exc).splitlines()[0]})") from None
            for record in records:
                if "error" in record:
                    raise _WorkerFailure(rank, record["error"])
                if record.get("done"):
                    done[rank] = True
                    continue
                counts[rank] += 1
                if rank == 0:
                    state.on_report(record)
            if not done[rank]:
                pending[group.workers[rank].poll.remote(POLL_S)] = rank
    if len(set(counts)) > 1:
        detail = ", ".join(f"rank {r}: {c}" for r, c in enumerate(counts))
        raise TrainingFailedError(
            f"workers called session.report an unequal number of times ({detail}); every "
            f"worker must report the same number of times (report on all ranks, checkpoint "
            f"on rank 0 only)"
        )
