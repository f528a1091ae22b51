"""RLTrainer: an RLlib algorithm (new API stack) trained in the fit's own process.

The algorithm (and its learner) lives in the process that calls ``fit()`` (the driver,
a pipeline step task or a Tune trial); RLlib starts its own env-runner actors, one per
``ScalingConfig.num_workers`` (0: sample in the local env runner), each with a fraction
of a CPU on small clusters. The fit runs through the shared controller in local mode, so
reports, checkpoints, ``Result`` and ``Tuner`` behave as for every other trainer.
RLlib is imported lazily: ``import airflowdsl.train.rl`` never needs it.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from airflowdsl.air import session
from airflowdsl.air.callbacks import stopped_externally
from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import CheckpointConfig, RunConfig, ScalingConfig, scaling_config_from
from airflowdsl.air.result import Result
from airflowdsl.air.search import is_search_space
from airflowdsl.train.predictor import Predictor
from airflowdsl.train.preprocess import check as check_preprocessor
from airflowdsl.train.preprocess import needs_fit
from airflowdsl.train.trainer import BaseTrainer, DataParallelTrainer

_INSTALL = "RLTrainer needs RLlib and gymnasium: pip install 'airflowdsl[rl]'"
DEFAULT_MODULE_ID = "default_policy"
#: where ``Algorithm.save_to_path`` puts the RLModules (one directory per module id)
_MODULE_DIR = ("learner_group", "learner", "rl_module")
#: RLlib/Tune bookkeeping that is not a metric (or is re-added by our session)
_NOT_METRICS = {"config", "date", "hostname", "node_ip", "pid", "trial_id", "done",
                "timestamp", "training_iteration", "time_total_s", "time_since_restore",
                "iterations_since_restore"}
#: flattened RLlib keys also reported under a short name
ALIASES = {
    "episode_return_mean": "env_runners/episode_return_mean",
    "episode_return_max": "env_runners/episode_return_max",
    "episode_return_min": "env_runners/episode_return_min",
    "episode_len_mean": "env_runners/episode_len_mean",
    "num_env_steps_sampled_lifetime": "env_runners/num_env_steps_sampled_lifetime",
    # AIR's (RLlib's old API stack's) names for the same numbers
    "episode_reward_mean": "env_runners/episode_return_mean",
    "episode_reward_max": "env_runners/episode_return_max",
    "episode_reward_min": "env_runners/episode_return_min",
    "timesteps_total": "env_runners/num_env_steps_sampled_lifetime",
}


def _require_rllib() -> None:
    """Import RLlib, undoing what its import does to TensorFlow.

    Where TensorFlow is installed but not yet imported, importing RLlib imports it and
    calls ``tf.compat.v1.disable_v2_behavior()`` for the whole process (graph mode):
    any TF/Keras code in the driver afterwards fails (``numpy() is only available when
    eager execution is enabled``). Our RLTrainer runs RLlib's new API stack, which is
    torch-only, so TF2 behaviour is restored at once.
    """
    if "ray.rllib" in sys.modules:
        return
    tf_before = "tensorflow" in sys.modules
    try:
        import gymnasium  # noqa: F401
        import ray.rllib  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{_INSTALL} ({exc})") from exc
    tf = sys.modules.get("tensorflow")
    if tf is not None and not tf_before and not tf.executing_eagerly():
        tf.compat.v1.enable_v2_behavior()


class RLCheckpoint(Checkpoint):
    """An ``Algorithm.save_to_path`` directory."""

    def get_algorithm(self) -> Any:
        """The whole algorithm, rebuilt from the checkpoint (starts its env runners)."""
        _require_rllib()
        from ray.rllib.algorithms.algorithm import Algorithm

        return Algorithm.from_checkpoint(self.path)

    def get_rl_module(self, module_id: str = DEFAULT_MODULE_ID) -> Any:
        """Only the trained ``RLModule`` (the policy network): no env runners, no learner."""
        _require_rllib()
        from ray.rllib.core.rl_module.rl_module import RLModule

        path = os.path.join(self.path, *_MODULE_DIR, module_id)
        if not os.path.isdir(path):
            known = os.listdir(os.path.join(self.path, *_MODULE_DIR)) if os.path.isdir(
                os.path.join(self.path, *_MODULE_DIR)) else []
            raise KeyError(f"no RLModule {module_id!r} in checkpoint {self.path} "
                           f"(modules: {', '.join(sorted(known)) or 'none'})")
        return RLModule.from_checkpoint(path)

    get_policy = get_rl_module  # the new API stack's policy is the RLModule


def flatten_result(result: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """RLlib's nested result as ``{"env_runners/episode_return_mean": ...}`` scalars."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if not prefix and key in _NOT_METRICS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_result(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str, np.number, np.bool_)):
            out[name] = value.item() if isinstance(value, (np.number, np.bool_)) else value
    return out


def rl_metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    """What the trainer reports: the short names first, then the full flattened dict."""
    flat = flatten_result(result)
    short = {alias: flat.get(key, flat.get(alias, math.nan)) for alias, key in ALIASES.items()}
    return {**short, **flat}


def should_stop(stop: Mapping[str, Any] | Callable[[dict[str, Any]], bool] | None,
                metrics: dict[str, Any]) -> bool:
    """Tune's rule: any ``metric >= threshold`` in a dict, or a callable ``stop(metrics)``."""
    if stop is None:
        return False
    if callable(stop):
        return bool(stop(metrics))
    for key, threshold in stop.items():
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not math.isnan(value) and value >= threshold:
            return True
    return False


def _algorithm_config(algorithm: Any, config: Any) -> Any:
    """An ``AlgorithmConfig`` from a name/class/config plus a dict or config object."""
    from ray.rllib.algorithms.algorithm import Algorithm
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    if isinstance(config, AlgorithmConfig):
        return config.copy(copy_frozen=False)
    if isinstance(algorithm, AlgorithmConfig):
        base = algorithm.copy(copy_frozen=False)
    elif isinstance(algorithm, type) and issubclass(algorithm, Algorithm):
        base = algorithm.get_default_config()
    elif isinstance(algorithm, str):
        from ray.rllib.algorithms.registry import ALGORITHMS

        names = {name.lower(): name for name in ALGORITHMS}
        if algorithm.lower() not in names:
            raise ValueError(f"unknown RLlib algorithm {algorithm!r} "
                             f"(known: {', '.join(sorted(ALGORITHMS))})")
        base = ALGORITHMS[names[algorithm.lower()]]()[1].copy(copy_frozen=False)
    else:
        raise TypeError("algorithm must be a name ('PPO'), an Algorithm class or an "
                        f"AlgorithmConfig, got {type(algorithm).__name__}")
    if config:
        base.update_from_dict(dict(config))
    return base


class RLTrainer(BaseTrainer):
    """``RLTrainer(algorithm="PPO", config={"env": "CartPole-v1", ...}, run_config=RunConfig(
    stop={"training_iteration": 5})).fit()`` (the AIR shape)."""

    def __init__(
        self,
        *,
        algorithm: Any,
        config: Mapping[str, Any] | Any = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
        preprocessor: Any = None,
    ) -> None:
        _require_rllib()
        check_preprocessor(preprocessor, owner="RLTrainer")
        if preprocessor is not None and not is_search_space(preprocessor) \
                and needs_fit(preprocessor):
            raise ValueError("RLTrainer has no datasets to fit a preprocessor on: pass a "
                             "fitted one (it is stored in the checkpoints and applied by "
                             "RLPredictor)")
        self.preprocessor = preprocessor
        self.algorithm = algorithm
        self.config = config
        self.scaling_config = scaling_config_from(scaling_config,
                                                  default=ScalingConfig(num_workers=0))
        self.run_config = run_config or RunConfig()
        self.resume_from_checkpoint = resume_from_checkpoint
        self.datasets: dict[str, Any] = {}
        _algorithm_config(algorithm, config)  # fail now on a bad name or key

    def with_overrides(self, overrides: dict[str, Any]) -> RLTrainer:
        """Tune overrides; a dict ``config`` override updates an ``AlgorithmConfig`` too."""
        override = overrides.get("config")
        if isinstance(override, Mapping) and self.config is not None \
                and not isinstance(self.config, Mapping):
            merged = _algorithm_config(self.algorithm, self.config).update_from_dict(dict(override))
            overrides = {**overrides, "config": merged}
        return super().with_overrides(overrides)

    # --- resources -----------------------------------------------------------------
    def _env_runner_cpus(self, cluster_cpus: float) -> float:
        res = self.scaling_config.resources_per_worker or {}
        if "CPU" in res:
            return float(res["CPU"])
        explicit = None
        if isinstance(self.config, Mapping):
            explicit = self.config.get("num_cpus_per_env_runner")
        elif self.config is not None:
            value = getattr(self.config, "num_cpus_per_env_runner", 1)
            explicit = value if value != 1 else None  # 1 is RLlib's default: size it
        if explicit is not None:
            return float(explicit)
        return self.scaling_config.worker_resources(cluster_cpus=cluster_cpus)["CPU"]

    def tune_bundles(self, *, cluster_cpus: float) -> list[dict[str, float]]:
        """A Tune trial's bundles: the algorithm (learner) process, then the env runners."""
        head = {"CPU": 1.0, **({"GPU": 1.0} if self.scaling_config.use_gpu else {})}
        runner = {"CPU": self._env_runner_cpus(cluster_cpus)}
        return [head] + [dict(runner) for _ in range(self.scaling_config.num_workers)]

    def build_config(self, *, cluster_cpus: float | None = None) -> Any:
        """The ``AlgorithmConfig`` this trainer runs (env runners sized for the cluster)."""
        cfg = _algorithm_config(self.algorithm, self.config)
        if cluster_cpus is None:
            import ray

            cluster_cpus = float(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() \
                else float(os.cpu_count() or 1)
        cfg.env_runners(num_env_runners=self.scaling_config.num_workers,
                        num_cpus_per_env_runner=self._env_runner_cpus(cluster_cpus))
        if self.scaling_config.use_gpu:
            cfg.learners(num_gpus_per_learner=1)
        return cfg

    # --- fit -----------------------------------------------------------------------
    def fit(self) -> Result:
        """Train until ``RunConfig.stop`` (or a Tune stop rule); returns a ``Result``."""
        import time

        import ray

        if self.run_config.stop is None and not stopped_externally(self.run_config.callbacks):
            raise ValueError("RLTrainer needs a stop rule: RunConfig(stop={'training_iteration'"
                             ": N}) or a metric threshold such as "
                             "{'episode_return_mean': 150}")
        if self.scaling_config.num_workers and not ray.is_initialized():
            ray.init()
        name = self.run_config.name or f"RLTrainer_{time.strftime('%Y%m%d-%H%M%S')}"
        runner = DataParallelTrainer(
            self._train_loop,
            scaling_config=ScalingConfig(num_workers=0),  # the loop runs here
            run_config=_replace(self.run_config, name=name),
            resume_from_checkpoint=self.resume_from_checkpoint,
            preprocessor=self.preprocessor,
        )
        result = runner.fit()
        if result.checkpoint is not None:
            result.checkpoint = RLCheckpoint.from_checkpoint(result.checkpoint)
        result.best_checkpoints = [(RLCheckpoint.from_checkpoint(c), m)
                                   for c, m in result.best_checkpoints]
        return result

    def _train_loop(self) -> None:
        ckpt_config = self.run_config.checkpoint_config or CheckpointConfig()
        with _rllib_context(os.path.join(session.get_trial_dir(), "rllib")):
            algo = self.build_config().build_algo()
        try:
            restored = session.get_checkpoint()
            if restored is not None:
                algo.restore_from_path(restored.path)
            while True:
                with _rllib_context(None):  # env runners may be re-created in train()
                    result = algo.train()
                metrics = rl_metrics(result)
                done = should_stop(self.run_config.stop,
                                   {**metrics, "training_iteration": algo.iteration})
                freq = ckpt_config.checkpoint_frequency
                if (freq and algo.iteration % freq == 0) or (done and ckpt_config.checkpoint_at_end):
                    scratch = session.scratch_dir()
                    algo.save_to_path(scratch)
                    session.report(metrics, checkpoint=RLCheckpoint(scratch))
                    shutil.rmtree(scratch, ignore_errors=True)  # the session kept a copy
                else:
                    session.report(metrics)
                if done:
                    return
        finally:
            algo.stop()


@contextlib.contextmanager
def _rllib_context(logdir: str | None) -> Iterator[None]:
    """What an RLlib ``Algorithm`` built outside Tune needs from its process.

    * Placement: RLlib puts its env-runner actors into the bundles of
      ``ray.util.get_current_placement_group()``. In a task that runs in a placement
      group that does not capture its child tasks (a pipeline step's slot), the actors
      land outside it, and RLlib's bundle index then fails Ray's check ("If placement
      group is not set, the value of bundle index must be -1"). Here RLlib sees no
      placement group then; a Tune trial's group (which captures) is used as before.
    * Log directory (``logdir`` given): a ``Trainable`` without Tune storage makes a
      folder under ``~/ray_results`` on construction; it goes under the trainer's own
      run directory instead.
    """
    import ray.util
    from ray._private.worker import global_worker
    from ray.tune.trainable import trainable as tune_trainable

    get_pg = ray.util.get_current_placement_group
    uncaptured = (ray.is_initialized() and get_pg() is not None
                  and not global_worker.should_capture_child_tasks_in_placement_group)
    default_storage = tune_trainable.DEFAULT_STORAGE_PATH
    if uncaptured:
        ray.util.get_current_placement_group = lambda: None  # type: ignore[assignment]
    if logdir is not None:
        os.makedirs(logdir, exist_ok=True)
        tune_trainable.DEFAULT_STORAGE_PATH = logdir  # type: ignore[attr-defined]
    try:
        yield
    finally:
        ray.util.get_current_placement_group = get_pg  # type: ignore[assignment]
        tune_trainable.DEFAULT_STORAGE_PATH = default_storage  # type: ignore[attr-defined]


def _replace(run_config: RunConfig, **changes: Any) -> RunConfig:
    import dataclasses

    return dataclasses.replace(run_config, **changes)


class RLPredictor(Predictor):
    """Actions of a trained RLModule for a batch of observations (greedy by default)."""

    def __init__(self, module: Any, *, explore: bool = False) -> None:
        self.module = module
        self.explore = explore

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, *, module_id: str = DEFAULT_MODULE_ID,
                        explore: bool = False) -> RLPredictor:
        module = RLCheckpoint.from_checkpoint(checkpoint).get_rl_module(module_id)
        return cls(module, explore=explore)

    def compute_actions(self, observations: Any) -> np.ndarray:
        """Actions for a batch of raw observations (shape ``[batch, *obs_shape]``)."""
        import torch
        from ray.rllib.core.columns import Columns

        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32))
        with torch.no_grad():
            if self.explore:
                out = self.module.forward_exploration({Columns.OBS: obs})
                dist_cls = self.module.get_exploration_action_dist_cls()
            else:
                out = self.module.forward_inference({Columns.OBS: obs})
                dist_cls = self.module.get_inference_action_dist_cls()
            if Columns.ACTIONS in out:
                actions = out[Columns.ACTIONS]
            else:
                dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
                actions = (dist if self.explore else dist.to_deterministic()).sample()
        return np.asarray(actions.cpu().numpy())

    def _predict_pandas(self, data: pd.DataFrame) -> np.ndarray:
        """Observations (columns side by side, or one column of arrays) to actions."""
        if data.shape[1] == 1 and isinstance(data.iloc[0, 0], (list, np.ndarray)):
            obs = np.stack([np.asarray(v) for v in data.iloc[:, 0]])
        else:
            obs = data.to_numpy(dtype=np.float32)
        return self.compute_actions(obs)


__all__ = ["RLCheckpoint", "RLPredictor", "RLTrainer", "flatten_result", "rl_metrics",
           "should_stop"]
