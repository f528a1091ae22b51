"""Tuner over Ray Tune: our trainers and plain ``fn(config)`` functions as trials.

Ray Tune is imported lazily, inside functions (``import ray.tune`` costs seconds);
``import airflowdsl`` imports neither this module nor Ray. A trainer trial runs
``trainer.with_overrides(config).fit()`` inside Tune's trial actor; every rank-0 report
of that fit is forwarded to ``ray.tune.report`` by a ``TuneReportCallback`` added to the
trial's ``RunConfig.callbacks``, and the trainer's worker group lives in the trial's
placement group (one bundle per worker, the controller in an empty head bundle). A plain function reports through
``airflowdsl.air.session.report`` as it would in a trainer. See docs/training.md.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from airflowdsl.air.callbacks import ReportCallback
from airflowdsl.air.checkpoint import METADATA_FILE, PREPROCESSOR_FILE, Checkpoint
from airflowdsl.air.config import CheckpointConfig, RunConfig, SyncConfig
from airflowdsl.air.remote import mark_complete
from airflowdsl.air.resources import free_for_nested
from airflowdsl.air.result import Result
from airflowdsl.air.search import config_fields, contains_search_space, is_search_space
from airflowdsl.air.storage import Options, is_uri, options_for, resolve
from airflowdsl.train import preprocess
from airflowdsl.train.trainer import BaseTrainer

# --- search space (Ray Tune's own objects, so any Tune searcher understands them) -----


def grid_search(values: list[Any]) -> dict[str, list[Any]]:
    """Try every value (crossed with the other grid axes), ``num_samples`` times."""
    return {"grid_search": list(values)}


def choice(categories: list[Any]) -> Any:
    from ray import tune

    return tune.choice(categories)


def uniform(lower: float, upper: float) -> Any:
    from ray import tune

    return tune.uniform(lower, upper)


def loguniform(lower: float, upper: float, base: float = 10) -> Any:
    from ray import tune

    return tune.loguniform(lower, upper, base)


def randint(lower: int, upper: int) -> Any:
    """An integer in ``[lower, upper)`` (upper excluded, as in Ray Tune)."""
    from ray import tune

    return tune.randint(lower, upper)


# --- configuration -------------------------------------------------------------------


@dataclass(frozen=True, config=ConfigDict(extra="forbid", arbitrary_types_allowed=True))
class TuneConfig:
    """What to optimise and how many trials: ``metric``/``mode`` pick the best result."""

    metric: str | None = None
    mode: Literal["min", "max"] | None = None
    num_samples: int = Field(default=1, ge=1)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    search_alg: Any = None
    scheduler: Any = None
    time_budget_s: float | None = None


# --- the trials ----------------------------------------------------------------------


class TuneReportCallback(ReportCallback):
    """Forwards a fit's reports to ``ray.tune.report`` (inside a Tune trial)."""

    stops_training = True  # Tune's stop rules and schedulers end the trial

    def __init__(self) -> None:
        self.forwarded = 0

    def on_report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
        self.forwarded += 1
        _report_to_tune(metrics, checkpoint)


def _trainer_trial(config: dict[str, Any], trainer: BaseTrainer,
                   configs: dict[str, Any] | None = None) -> None:
    """One Tune trial of a trainer: overrides applied, reports forwarded to Tune.

    ``configs``: the config objects of ``param_space`` that held search spaces (Tune
    resolved them as dicts of their fields); each is rebuilt with its resolved values,
    which validates them (``ScalingConfig(num_workers=grid_search([1, 2]))``)."""
    from ray import tune

    config = _rebuilt(config, configs or {})
    trial = trainer.with_overrides(config) if config else trainer
    workdir = tempfile.mkdtemp(prefix="airflowdsl-trial-")
    overrides: dict[str, Any] = {}
    params = inspect.signature(type(trial).__init__).parameters
    run_config = getattr(trial, "run_config", None)
    reporter = TuneReportCallback()
    if "run_config" in params and isinstance(run_config, RunConfig):
        # checkpoints land in a scratch run dir; Tune persists the ones it keeps
        overrides["run_config"] = dataclasses.replace(
            run_config, storage_path=workdir, name="run",
            callbacks=[*(run_config.callbacks or []), reporter])
    restored = tune.get_checkpoint()
    if restored is not None and "resume_from_checkpoint" in params:
        overrides["resume_from_checkpoint"] = Checkpoint.from_ray(restored)
    if overrides:
        trial = trial.with_overrides(overrides)
    try:
        result = trial.fit()
        if not reporter.forwarded and (result.metrics or result.checkpoint):  # no reports
            _report_to_tune(result.metrics, result.checkpoint)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _function_trial(config: dict[str, Any], fn: Callable[..., Any]) -> Any:
    """One Tune trial of ``fn(config)``, with ``airflowdsl.air.session`` installed."""
    from ray import tune

    from airflowdsl.air import session as air_session
    from airflowdsl.train.worker_group import call_loop

    workdir = tempfile.mkdtemp(prefix="airflowdsl-trial-")
    restored = tune.get_checkpoint()

    def sink(record: dict[str, Any]) -> None:
        path = record.get("checkpoint_path")
        _report_to_tune(record["metrics"], Checkpoint(path) if path else None)
        if path:  # Tune has copied it into the trial directory
            shutil.rmtree(path, ignore_errors=True)

    sess = air_session.WorkerSession(
        world_rank=0, world_size=1, local_rank=0, local_world_size=1, node_rank=0,
        run_dir=workdir, checkpoint=Checkpoint.from_ray(restored) if restored else None,
        trial_name=tune.get_context().get_trial_name() or "", config=dict(config), sink=sink,
    )
    try:
        with air_session.installed(sess):
            return call_loop(fn, config)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _report_to_tune(metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
    from ray import tune
    from ray.tune.result import AUTO_RESULT_KEYS

    clean = {k: v for k, v in metrics.items() if k not in AUTO_RESULT_KEYS}
    ray_ckpt = tune.Checkpoint.from_directory(checkpoint.path) if checkpoint else None
    tune.report(clean, checkpoint=ray_ckpt)


def _rebuilt(config: dict[str, Any], configs: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for key, original in configs.items():
        if isinstance(out.get(key), dict):
            out[key] = dataclasses.replace(original, **out[key])
    return out


def _config_variants(trainer: BaseTrainer, configs: dict[str, Any]) -> list[BaseTrainer]:
    """The trainer under every value the search spaces of ``configs`` can take (grid
    values and ``choice`` categories; other spaces keep the trainer's own value)."""
    import itertools

    variants = [trainer]
    for key, original in configs.items():
        axes = []
        for name, value in config_fields(original).items():
            if isinstance(value, dict) and set(value) == {"grid_search"}:
                axes.append([(name, v) for v in value["grid_search"]])
            elif isinstance(getattr(value, "categories", None), list):
                axes.append([(name, v) for v in value.categories])
        for combo in itertools.product(*axes) if axes else []:
            try:
                resolved = dataclasses.replace(original, **dict(combo))
            except Exception:  # noqa: BLE001 - an invalid variant fails in its own trial
                continue
            if not contains_search_space(resolved):
                variants.append(trainer.with_overrides({key: resolved}))
    return variants


def _for_tune(param_space: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``param_space`` with every config object that holds a search space turned into a
    dict of its fields (Tune resolves dicts, not objects); and those objects by key."""
    space, configs = dict(param_space), {}
    for key, value in param_space.items():
        if (dataclasses.is_dataclass(value) and not isinstance(value, type)
                and contains_search_space(value)):
            configs[key] = value
            space[key] = config_fields(value)
    return space, configs


# --- resources -----------------------------------------------------------------------


def trial_bundles(trainer: BaseTrainer, *, cluster_cpus: float) -> list[dict[str, float]]:
    """Placement-group bundles of one trainer trial: the controller, then the workers.

    Trainers that start their own actors (e.g. RLTrainer) define ``tune_bundles``. A
    trainer with workers gets an empty head bundle (its controller only polls) plus one
    bundle per worker, sized exactly as ``WorkerGroup`` will ask inside the trial.
    """
    own = getattr(trainer, "tune_bundles", None)
    if callable(own):
        bundles: list[dict[str, float]] = own(cluster_cpus=cluster_cpus)
        return bundles
    scaling = getattr(trainer, "scaling_config", None)
    head = dict(getattr(scaling, "trainer_resources", None) or {})
    if scaling is None or scaling.num_workers == 0:  # the loop runs in the trial process
        return [{"CPU": 1.0, **head}]
    return [head, *scaling.bundles(cluster_cpus=cluster_cpus)]


def _default_concurrency(bundles: list[dict[str, float]], cluster_cpus: float, *,
                         reserve: float) -> int:
    """As many trials as fit in ``cluster_cpus - reserve`` (at least one). Trainer trials
    get their datasets materialized before Tune starts (``_materialized``), so they need
    no reserve; function trials keep one CPU free for data they may read lazily."""
    free = max(cluster_cpus - reserve, 0.0)
    trial_cpus = sum(b.get("CPU", 0.0) for b in bundles)
    fits = math.floor(free / trial_cpus + 1e-9) if trial_cpus > 0 else math.floor(free + 1e-9)
    return int(max(1, fits))


def _materialized(trainer: BaseTrainer, param_space: dict[str, Any]
                  ) -> tuple[BaseTrainer, dict[str, Any], bool]:
    """Data first, then reservations: the trainer with its lazy datasets materialized here,
    before any trial holds a placement group (a trial's Ray Data tasks would otherwise
    wait for CPUs the trials hold); datasets in ``param_space`` (grid values included)
    too. A preprocessor the ``param_space`` leaves alone is fitted and applied here, once
    for all trials (the trials store it in their checkpoints). Returns ``(trainer,
    param_space, trials_preprocess)``: the last is True when each trial still fits and
    applies a preprocessor itself (it then needs a free CPU for that Ray Data work)."""
    space = dict(param_space)
    if "datasets" in space:
        space["datasets"] = _materialize_all(space["datasets"])
    datasets = getattr(trainer, "datasets", None)
    if not datasets:
        return trainer, space, False
    preprocessor = getattr(trainer, "preprocessor", None)
    if (preprocessor is not None and not isinstance(preprocessor, preprocess.Applied)
            and "preprocessor" not in space and "datasets" not in space):
        fitted, transformed = preprocess.prepare(preprocessor, datasets)
        return trainer.with_overrides({
            "datasets": {k: _materialize_all(v) for k, v in transformed.items()},
            "preprocessor": preprocess.Applied(fitted)}), space, False
    lazy = {k: _materialize_all(v) for k, v in datasets.items()}
    trainer = trainer.with_overrides({"datasets": lazy}) if lazy else trainer
    trials_preprocess = preprocessor is not None and not isinstance(preprocessor,
                                                                    preprocess.Applied)
    return trainer, space, trials_preprocess or "preprocessor" in space


def _candidates(value: Any) -> list[Any]:
    """The values a ``param_space`` entry can take that are known before the trials: a
    grid's values, a ``choice``'s categories, or the value itself (other spaces: none)."""
    if isinstance(value, dict) and is_search_space(value):
        return list(value["grid_search"])
    categories = getattr(value, "categories", None)
    if isinstance(categories, list):
        return categories
    return [] if contains_search_space(value) else [value]


def _materialize_all(value: Any) -> Any:
    """Every lazy Ray Dataset in ``value`` (dicts, lists, grid_search values) materialized."""
    if isinstance(value, dict):
        return {k: _materialize_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_materialize_all(v) for v in value]
    if hasattr(value, "materialize") and hasattr(value, "iter_batches"):
        from ray.data.dataset import MaterializedDataset

        return value if isinstance(value, MaterializedDataset) else value.materialize()
    return value


def _progress_callback() -> Any:
    """A Tune callback that publishes "trial k/N ..." as the step's progress."""
    from ray import tune

    from airflowdsl.air import progress

    class _Progress(tune.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.done = 0

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any,
                            result: dict[str, Any], **info: Any) -> None:
            it = result.get("training_iteration", "?")
            progress.publish(f"trials {self.done}/{len(trials)} done; {trial.trial_id} iter {it}")

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                              **info: Any) -> None:
            self.done += 1
            progress.publish(f"trials {self.done}/{len(trials)} done")

    return _Progress()


# --- results -------------------------------------------------------------------------


#: where a Tuner's storage is a URI: its scheme and options (``air.storage``)
Remote = tuple[str, Options] | None


def _ours(ray_ckpt: Any, remote: Remote) -> Checkpoint:
    """A Tune checkpoint as ours: a local directory, or the URI it was persisted to."""
    if remote is None:
        return Checkpoint(ray_ckpt.path)
    scheme, options = remote
    return Checkpoint(f"{scheme}://{ray_ckpt.path.lstrip('/')}", storage_options=options)


def _to_result(ray_result: Any, checkpoint_config: CheckpointConfig | None,
               remote: Remote = None) -> Result:
    """A Tune trial result as our ``Result`` (checkpoints are local directories, or URI
    checkpoints where the Tuner's storage is a URI)."""
    best = [(_ours(c, remote), dict(m)) for c, m in (ray_result.best_checkpoints or [])]
    attr = checkpoint_config.checkpoint_score_attribute if checkpoint_config else None
    checkpoint = _ours(ray_result.checkpoint, remote) if ray_result.checkpoint else None
    if attr and checkpoint_config is not None:
        scored = [cm for cm in best if isinstance(cm[1].get(attr), (int, float))]
        scored.sort(key=lambda cm: cm[1][attr],
                    reverse=checkpoint_config.checkpoint_score_order == "max")
        best = scored + [cm for cm in best if cm not in scored]
        checkpoint = best[0][0] if best else checkpoint
    else:
        best.reverse()  # newest first, as a trainer's Result has them
    frame = ray_result.metrics_dataframe
    history = frame.to_dict("records") if frame is not None else []
    metrics = {k: v for k, v in (ray_result.metrics or {}).items() if k != "config"}
    return Result(metrics=metrics, checkpoint=checkpoint, error=ray_result.error,
                  path=ray_result.path, metrics_history=history, best_checkpoints=best,
                  config=ray_result.config)


class ResultGrid:
    """The trials of one ``Tuner.fit()`` (the AIR ``ResultGrid`` shape) as our Results."""

    def __init__(self, grid: Any, *, checkpoint_config: CheckpointConfig | None = None,
                 remote: Remote = None) -> None:
        self._grid = grid
        self._ckpt_config = checkpoint_config
        self._remote = remote
        if remote is not None:  # Tune persisted each listed checkpoint before it reported
            for raw in grid:  # it: mark it complete, so our Checkpoint loads it
                for ckpt in [raw.checkpoint, *(c for c, _ in raw.best_checkpoints or [])]:
                    if ckpt is not None:
                        ours = _ours(ckpt, remote)
                        assert ours.uri is not None
                        mark_complete(ours.uri, ours.storage_options,
                                      unlisted=(METADATA_FILE, PREPROCESSOR_FILE))

    def get_best_result(self, metric: str | None = None, mode: str | None = None,
                        scope: str = "last", filter_nan_and_inf: bool = True) -> Result:
        """The best trial by ``metric``/``mode`` (defaults: the TuneConfig's)."""
        best = self._grid.get_best_result(metric=metric, mode=mode, scope=scope,
                                          filter_nan_and_inf=filter_nan_and_inf)
        return _to_result(best, self._ckpt_config, self._remote)

    def get_dataframe(self, filter_metric: str | None = None,
                      filter_mode: str | None = None) -> Any:
        """One row per trial (its last report, or its best by ``filter_metric``), with config."""
        return self._grid.get_dataframe(filter_metric=filter_metric, filter_mode=filter_mode)

    @property
    def errors(self) -> list[BaseException]:
        return list(self._grid.errors)

    @property
    def num_errors(self) -> int:
        return int(self._grid.num_errors)

    @property
    def experiment_path(self) -> str:
        return str(self._grid.experiment_path)

    def __len__(self) -> int:
        return len(self._grid)

    def __getitem__(self, index: int) -> Result:
        return _to_result(self._grid[index], self._ckpt_config, self._remote)

    def __iter__(self) -> Iterator[Result]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"ResultGrid({len(self)} trials, {self.num_errors} errors)"


def trial_rows(grid: ResultGrid, *, metric: str | None, mode: str | None
               ) -> list[dict[str, Any]]:
    """One JSON-able row per trial: ``trial_id``, ``config``, ``metrics`` (the last
    report's numbers), ``status`` (``TERMINATED`` / ``ERROR``), ``best`` (by ``metric`` /
    ``mode``), ``checkpoint`` (its path) and ``error``."""
    rows: list[dict[str, Any]] = []
    for raw in grid._grid:  # Ray's results: their metrics still hold trial_id
        metrics = dict(raw.metrics or {})
        rows.append({
            "trial_id": str(metrics.get("trial_id", len(rows))),
            "config": _jsonable(raw.config or {}),
            "metrics": {k: v for k, v in metrics.items()
                        if k not in _BOOKKEEPING and _is_number(v)},
            "status": "ERROR" if raw.error else "TERMINATED",
            "best": False,
            "checkpoint": _ours(raw.checkpoint, grid._remote).location if raw.checkpoint
            else None,
            "error": f"{type(raw.error).__name__}: {raw.error}".splitlines()[0]
            if raw.error else None,
        })
    scored = [r for r in rows if metric and _is_number(r["metrics"].get(metric))
              and not math.isnan(r["metrics"][metric])]
    if scored and mode in ("min", "max"):
        pick = min if mode == "min" else max
        pick(scored, key=lambda r: r["metrics"][metric])["best"] = True
    return rows


def record_trials(grid: ResultGrid, *, metric: str | None, mode: str | None) -> None:
    """The trials as ``"trial"`` records of the current pipeline step (run history,
    ``airflowdsl show RUN --step NAME``); nothing outside a step."""
    from airflowdsl.air import progress

    if progress.current() is None:
        return
    for row in trial_rows(grid, metric=metric, mode=mode):
        progress.record("trial", row)


_BOOKKEEPING = frozenset({"trial_id", "timestamp", "pid", "date", "hostname", "node_ip",
                          "time_this_iter_s", "time_since_restore", "iterations_since_restore",
                          "timesteps_since_restore", "done", "checkpoint_dir_name"})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _jsonable(value: Any) -> Any:
    """Configs hold numbers and strings, but also datasets or preprocessors: those as
    their repr (cut at 80 characters)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: _jsonable(config_fields(value))}
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- the Tuner -----------------------------------------------------------------------


class Tuner:
    """``Tuner(trainer_or_fn, param_space=..., tune_config=..., run_config=...).fit()``.

    For a trainer, ``param_space`` keys are its constructor arguments (dicts merge:
    ``{"params": {"max_depth": randint(2, 8)}}``) and ``run_config`` defaults to the
    trainer's. For a function, ``param_space`` is the ``config`` it receives.
    """

    def __init__(
        self,
        trainable: BaseTrainer | Callable[..., Any],
        *,
        param_space: dict[str, Any] | None = None,
        tune_config: TuneConfig | None = None,
        run_config: RunConfig | None = None,
    ) -> None:
        if not isinstance(trainable, BaseTrainer) and not callable(trainable):
            raise TypeError("Tuner takes a trainer (BaseTrainer) or a function fn(config), "
                            f"got {type(trainable).__name__}")
        self.trainable = trainable
        self.param_space = dict(param_space or {})
        if isinstance(trainable, BaseTrainer) and "preprocessor" in self.param_space:
            for value in _candidates(self.param_space["preprocessor"]):  # before any trial
                preprocess.check(value, owner="Tuner param_space['preprocessor']")
        self.tune_config = tune_config or TuneConfig()
        if run_config is None:
            run_config = getattr(trainable, "run_config", None) or RunConfig()
        self.run_config = run_config
        self._restore: tuple[str, dict[str, bool]] | None = None

    @classmethod
    def restore(cls, path: str, trainable: BaseTrainer | Callable[..., Any], *,
                resume_unfinished: bool = True, resume_errored: bool = False,
                restart_errored: bool = False, param_space: dict[str, Any] | None = None,
                tune_config: TuneConfig | None = None) -> Tuner:
        """AIR's ``Tuner.restore(path, trainable)``: continue an interrupted experiment
        (``path``: its directory, ``ResultGrid.experiment_path``). ``fit()`` then resumes
        unfinished trials (and errored ones when asked) and returns the whole grid.
        ``param_space`` must be the original one when it held datasets or objects."""
        tuner = cls(trainable, param_space=param_space, tune_config=tune_config)
        tuner._restore = (path, {"resume_unfinished": resume_unfinished,
                                 "resume_errored": resume_errored,
                                 "restart_errored": restart_errored})
        return tuner

    def fit(self) -> ResultGrid:
        """Run every trial on Ray Tune (starting a local Ray when none is running).

        Returns:
            The ``ResultGrid``: one ``Result`` per trial; trial errors are in the grid
            (``errors``, ``num_errors``), not raised.

        Raises:
            TypeError: ``run_config.callbacks`` holds something other than
                ``ray.tune.Callback`` instances.
        """
        import ray
        from ray import tune

        if not ray.is_initialized():
            ray.init()
        # the cluster less what the calling step holds itself (docs/runtime.md)
        cluster_cpus = free_for_nested().get("CPU", 1.0)
        tc = self.tune_config
        max_concurrent = tc.max_concurrent_trials
        trainable: Any
        param_space, configs = _for_tune(self.param_space)
        if isinstance(self.trainable, BaseTrainer):
            trainer, param_space, trials_preprocess = _materialized(self.trainable, param_space)
            strategy = getattr(getattr(trainer, "scaling_config", None), "placement_strategy",
                               "PACK")

            def resources(config: dict[str, Any]) -> Any:
                try:
                    config = _rebuilt(config, configs)
                    trial = trainer.with_overrides(config) if config else trainer
                except (TypeError, ValueError):  # an invalid trial fails in its own actor
                    trial = trainer
                return tune.PlacementGroupFactory(
                    trial_bundles(trial, cluster_cpus=cluster_cpus), strategy=strategy)

            trainable = tune.with_resources(
                tune.with_parameters(_trainer_trial, trainer=trainer, configs=configs),
                resources)
            if max_concurrent is None:
                # a trial may run Ray Data tasks outside its placement group (splitting
                # its datasets for 2+ workers, preprocessing them): then a CPU stays free
                # for them; concurrency is sized by the largest trial param_space can make
                variants = _config_variants(trainer, configs)
                splits = bool(getattr(trainer, "datasets", None)) and any(
                    getattr(getattr(t, "scaling_config", None), "num_workers", 0) > 1
                    for t in variants)
                largest = max((trial_bundles(t, cluster_cpus=cluster_cpus) for t in variants),
                              key=lambda b: sum(x.get("CPU", 0.0) for x in b))
                reserve = 1.0 if (splits or trials_preprocess) and cluster_cpus > 1 else 0.0
                max_concurrent = _default_concurrency(largest, cluster_cpus, reserve=reserve)
        else:
            trainable = tune.with_parameters(_function_trial, fn=self.trainable)
            own = getattr(self.trainable, "_resources", None)  # set by tune.with_resources
            if own is not None:
                trainable = tune.with_resources(trainable, own)
            if max_concurrent is None:  # a function may read data lazily: keep a CPU free
                max_concurrent = _default_concurrency(
                    [own if isinstance(own, dict) else {"CPU": 1.0}], cluster_cpus,
                    reserve=1.0 if cluster_cpus > 1 else 0.0)
        run_config, remote = _tune_run_config(self.run_config, default_name=self._default_name())
        run_config.callbacks = [*(run_config.callbacks or []), _progress_callback()]
        if self._restore is not None:
            path, how = self._restore
            restored = tune.Tuner.restore(
                resolve(path, options_for(path))[1] if is_uri(path) else path, trainable, param_space=param_space or None,
                resume_unfinished=how["resume_unfinished"],
                resume_errored=how["resume_errored"], restart_errored=how["restart_errored"],
                storage_filesystem=_filesystem(path))
            grid = ResultGrid(restored.fit(), checkpoint_config=self.run_config.checkpoint_config,
                              remote=_remote(path))
            record_trials(grid, metric=tc.metric, mode=tc.mode)
            return grid
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=tc.metric, mode=tc.mode, num_samples=tc.num_samples,
                max_concurrent_trials=max_concurrent, search_alg=tc.search_alg,
                scheduler=tc.scheduler, time_budget_s=tc.time_budget_s),
            run_config=run_config,
        )
        grid = ResultGrid(tuner.fit(), checkpoint_config=self.run_config.checkpoint_config,
                          remote=remote)
        record_trials(grid, metric=tc.metric, mode=tc.mode)
        return grid

    def _default_name(self) -> str:
        import time

        label = (type(self.trainable).__name__ if isinstance(self.trainable, BaseTrainer)
                 else getattr(self.trainable, "__name__", "trial"))
        return f"{label}_{time.strftime('%Y%m%d-%H%M%S')}"


def _remote(storage: str) -> Remote:
    return (storage.split("://", 1)[0], options_for(storage)) if is_uri(storage) else None


def _filesystem(storage: str) -> Any:
    """The pyarrow filesystem Tune should use for a URI ``storage`` (the run store's
    options: endpoint, keys), else None (Tune's own)."""
    return resolve(storage, options_for(storage))[0] if is_uri(storage) else None


def _tune_run_config(rc: RunConfig, *, default_name: str) -> tuple[Any, Remote]:
    """Tune's ``RunConfig`` for ours; storage: ``rc.resolved_storage_path()`` (inside a step,
    ``<store>/train``), a URI through our filesystem so Tune persists trial checkpoints
    there. Returns it with the storage's scheme and options (None: local)."""
    from ray import tune

    ckpt = rc.checkpoint_config
    callbacks = list(rc.callbacks or [])
    foreign = [cb for cb in callbacks if not isinstance(cb, tune.Callback)]
    if foreign:
        raise TypeError("Tuner run_config callbacks must be ray.tune.Callback instances, got "
                        + ", ".join(type(cb).__name__ for cb in foreign))
    storage = rc.resolved_storage_path()
    fs = _filesystem(storage)
    return tune.RunConfig(
        name=rc.name or default_name,
        storage_path=storage if fs is None else resolve(storage, options_for(storage))[1],
        storage_filesystem=fs,
        stop=rc.stop,
        callbacks=callbacks or None,
        verbose=rc.verbose,
        failure_config=tune.FailureConfig(
            max_failures=rc.failure_config.max_failures if rc.failure_config else 0),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=ckpt.num_to_keep if ckpt else None,
            checkpoint_score_attribute=ckpt.checkpoint_score_attribute if ckpt else None,
            checkpoint_score_order=ckpt.checkpoint_score_order if ckpt else "max"),
    ), _remote(storage)


__all__ = [
    "ResultGrid",
    "SyncConfig",
    "TuneConfig",
    "TuneReportCallback",
    "Tuner",
    "choice",
    "grid_search",
    "loguniform",
    "randint",
    "record_trials",
    "trial_bundles",
    "trial_rows",
    "uniform",
]
