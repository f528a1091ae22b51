"""TensorflowTrainer: ``MultiWorkerMirroredStrategy`` on the shared actor group (the AIR shape).

TensorFlow is imported lazily (inside functions), so importing this module is cheap and
works without TensorFlow installed. Every worker gets ``TF_USE_LEGACY_KERAS=1`` before
anything is imported there, so ``tf.keras`` is tf-keras (whose ``model.fit`` works under
the multi-worker strategy; Keras 3's does not, see docs/training.md), and ``TF_CONFIG``
(cluster = every worker's ip and a free port, task index = rank) before the loop starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.train.backend import Backend
from airflowdsl.train.predictor import Predictor
from airflowdsl.train.tensorflow_checkpoint import (
    TensorflowCheckpoint,
    build_model,
    model_spec,
    require_package,
)
from airflowdsl.train.tensorflow_data import prepare_dataset_shard
from airflowdsl.train.tensorflow_keras import (
    Keras3AwareLoop,
    Keras3ModelError,
    check_driver_keras,
    fit_custom_loop,
    keras3_train_step,
    prepare_model,
)
from airflowdsl.train.trainer import DataParallelTrainer

if TYPE_CHECKING:
    from airflowdsl.air.config import RunConfig, ScalingConfig
    from airflowdsl.train.tensorflow_callback import ReportCheckpointCallback
    from airflowdsl.train.worker_group import WorkerGroup

LEGACY_ENV = {"TF_USE_LEGACY_KERAS": "1"}


@dataclass(frozen=True)
class TensorflowConfig:
    """TensorFlow backend options. ``legacy_keras``: set ``TF_USE_LEGACY_KERAS=1`` in workers."""

    legacy_keras: bool = True


def _set_tf_config(addresses: list[str], index: int) -> None:
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


class _TensorflowBackend(Backend):
    def __init__(self, config: TensorflowConfig) -> None:
        self.worker_env = dict(LEGACY_ENV) if config.legacy_keras else {}

    def on_start(self, group: WorkerGroup, scaling: ScalingConfig) -> None:
        hosts = [info["ip"] if ":" not in info["ip"] else f"[{info['ip']}]" for info in group.infos]
        addresses = [f"{host}:{group.free_port(rank)}" for rank, host in enumerate(hosts)]
        group.execute_each(_set_tf_config, [(addresses, rank) for rank in range(len(group))])


class TensorflowTrainer(DataParallelTrainer):
    """Runs ``train_loop_per_worker`` on every worker with ``TF_CONFIG`` set for it.

    Inside the loop: ``strategy = tf.distribute.MultiWorkerMirroredStrategy()``, build and
    compile a ``tf.keras`` model under ``strategy.scope()``, and train on
    ``prepare_dataset_shard(session.get_dataset_shard("train"), ...)``.
    """

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: dict[str, Any] | None = None,
        tensorflow_config: TensorflowConfig | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict[str, Any] | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
        dataset_config: dict[str, Any] | None = None,
        preprocessor: Any = None,
    ) -> None:
        config = tensorflow_config or TensorflowConfig()
        require_package("tensorflow", "TensorflowTrainer")
        if config.legacy_keras:
            require_package("tf_keras", "TensorflowTrainer (tf.keras under TF_USE_LEGACY_KERAS=1)")
            check_driver_keras(train_loop_per_worker)  # workers' tf.keras is tf-keras
        super().__init__(
            Keras3AwareLoop(train_loop_per_worker) if callable(train_loop_per_worker)
            else train_loop_per_worker,
            train_loop_config=train_loop_config, backend_config=config,
            scaling_config=scaling_config, run_config=run_config, datasets=datasets,
            resume_from_checkpoint=resume_from_checkpoint, dataset_config=dataset_config,
            preprocessor=preprocessor)
        self.tensorflow_config = config

    def make_backend(self) -> Backend:
        return _TensorflowBackend(self.tensorflow_config)

    def fit(self) -> Any:
        if self.scaling_config.num_workers == 0 and self.tensorflow_config.legacy_keras:
            # local mode runs here: tf.keras resolves the env var on first use
            for key, value in LEGACY_ENV.items():
                os.environ.setdefault(key, value)
        return super().fit()


class TensorflowPredictor(Predictor):
    """A Keras model that scores pandas batches (feature columns stacked into one matrix).

    AIR's shapes: ``TensorflowPredictor(model=...)`` or ``(model_definition=fn,
    model_weights=...)``; ``from_checkpoint(ckpt, model_definition)`` loads the saved
    weights into the model ``model_definition`` builds (a function or Keras model
    class; without it the saved model itself is loaded); ``predict(data,
    dtype=tf.float32)``.
    """

    def __init__(self, model: Any = None, *, model_definition: Any = None,
                 model_weights: list[Any] | None = None, preprocessor: Any = None,
                 use_gpu: bool = False) -> None:
        spec = model_spec(model, model_definition)
        if spec is None:
            raise TypeError("TensorflowPredictor needs model= (a Keras model) or AIR's "
                            "model_definition= (a function or class building one)")
        self.model = build_model(spec)
        if model_weights is not None:
            self.model.set_weights(model_weights)
        self.preprocessor = preprocessor
        self.use_gpu = use_gpu

    @classmethod
    def from_checkpoint(  # type: ignore[override]  # no **kwargs: unknown ones fail early
            cls, checkpoint: Checkpoint, model_definition: Any = None, *, model: Any = None,
            use_gpu: bool = False, custom_objects: dict[str, Any] | None = None,
            compile: bool = True) -> TensorflowPredictor:
        ckpt = TensorflowCheckpoint.from_checkpoint(checkpoint)
        return cls(ckpt.get_model(model, model_definition=model_definition,
                                  custom_objects=custom_objects, compile=compile),
                   use_gpu=use_gpu)

    @classmethod
    def check_from_checkpoint(cls, kwargs: dict[str, Any]) -> None:
        super().check_from_checkpoint(kwargs)
        model_spec(kwargs.get("model"), kwargs.get("model_definition"))

    def _predict_pandas(self, data: pd.DataFrame, dtype: Any = None) -> pd.DataFrame:
        """``dtype``: the input's dtype (``tf.float32``, a numpy dtype, or AIR's dict of
        one per column; default float32)."""
        if isinstance(dtype, dict):  # AIR: a dtype per column (one matrix: their common type)
            dtype = np.result_type(*(_numpy_dtype(d) for d in dtype.values()))
        np_dtype = _numpy_dtype(dtype if dtype is not None else "float32")
        if len(data.columns) == 1 and pd.api.types.is_object_dtype(data.dtypes.iloc[0]):
            features = np.stack(data.iloc[:, 0].to_numpy()).astype(np_dtype)
        else:
            features = data.to_numpy(dtype=np_dtype)
        if self.use_gpu:
            import tensorflow as tf

            with tf.device("/GPU:0"):
                out = self.model(features, training=False)
        else:
            out = self.model(features, training=False)
        if isinstance(out, dict):
            return pd.DataFrame({k: _column(np.asarray(v)) for k, v in out.items()})
        return pd.DataFrame({"predictions": _column(np.asarray(out))})


def to_air_checkpoint(model: Any, preprocessor: Any = None) -> TensorflowCheckpoint:
    """AIR 2.0/2.1's ``ray.train.tensorflow.to_air_checkpoint``: the model (and the
    preprocessor, if any) in a new ``TensorflowCheckpoint``."""
    checkpoint = TensorflowCheckpoint.from_model(model)
    if preprocessor is not None:
        checkpoint.set_preprocessor(preprocessor)
    return checkpoint


def _numpy_dtype(dtype: Any) -> Any:
    """A numpy dtype from a TensorFlow ``DType`` (``tf.float32``) or anything numpy takes."""
    return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


def _column(values: np.ndarray) -> Any:
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    return list(values) if values.ndim > 1 else values


def __getattr__(name: str) -> Any:
    if name == "ReportCheckpointCallback":  # a tf-keras Callback: defined on first use
        from airflowdsl.train import tensorflow_callback

        return tensorflow_callback.ReportCheckpointCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Keras3ModelError",
    "ReportCheckpointCallback",
    "TensorflowCheckpoint",
    "TensorflowConfig",
    "TensorflowPredictor",
    "TensorflowTrainer",
    "fit_custom_loop",
    "keras3_train_step",
    "prepare_dataset_shard",
    "prepare_model",
    "to_air_checkpoint",
]
