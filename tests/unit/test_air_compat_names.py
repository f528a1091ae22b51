"""AIR names that Ray AIR's documentation code uses (ported and run in a session: see
docs/training.md, "Ray AIR's documentation code") and what they mean here."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from airflowdsl import train, tune
from airflowdsl.air import Checkpoint, RunConfig, ScalingConfig, session
from airflowdsl.air.config import SyncConfig, scaling_config_from
from airflowdsl.train.trainer import DataParallelTrainer


def test_scaling_config_as_a_dict_of_its_fields() -> None:
    """AIR 2.0's ``scaling_config={"num_workers": 2, ...}`` (air_key_concepts.py)."""
    trainer = DataParallelTrainer(lambda: None, scaling_config={"num_workers": 2,
                                                                "use_gpu": False})
    assert trainer.scaling_config == ScalingConfig(num_workers=2, use_gpu=False)
    default = ScalingConfig(num_workers=0)
    assert scaling_config_from(None, default=default) is default
    with pytest.raises(TypeError, match="ScalingConfig or a dict"):
        scaling_config_from(2, default=default)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_workr"):  # a misspelt field is named
        DataParallelTrainer(lambda: None, scaling_config={"num_workr": 2})


def test_ray_train_26_names_under_airflowdsl_train() -> None:
    """``from ray import train; train.report(...)`` and ``from ray.train import Checkpoint``."""
    assert train.report is session.report
    assert train.get_dataset_shard is session.get_dataset_shard
    assert train.get_checkpoint is session.get_checkpoint
    assert train.Checkpoint is Checkpoint and train.ScalingConfig is ScalingConfig
    with pytest.raises(AttributeError, match="no_such_name"):
        train.no_such_name  # noqa: B018


def test_sync_config_is_accepted_and_ignored_with_a_warning() -> None:
    assert tune.SyncConfig is SyncConfig
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = RunConfig(local_dir="/tmp/x", sync_config=tune.SyncConfig(upload_dir="s3://b"))
    assert config.resolved_storage_path() == "/tmp/x"
    assert any("sync_config" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="upload_dri"):
        SyncConfig(upload_dri="s3://b")  # type: ignore[call-arg]


def test_torch_to_air_checkpoint_keeps_model_and_preprocessor() -> None:
    torch = pytest.importorskip("torch")
    from ray.data.preprocessors import StandardScaler

    from airflowdsl.train.torch import TorchCheckpoint, to_air_checkpoint

    model = torch.nn.Linear(2, 1)
    scaler = StandardScaler(columns=["a"])
    checkpoint = to_air_checkpoint(model, preprocessor=scaler)
    restored = TorchCheckpoint.from_checkpoint(checkpoint).get_model()
    assert torch.equal(restored.weight, model.weight)
    assert type(checkpoint.get_preprocessor()) is StandardScaler


def test_air_keras_callback_name() -> None:
    """AIR 2.2-2.4's ``ray.air.integrations.keras.Callback`` (tf_starter.py)."""
    pytest.importorskip("tf_keras")
    from airflowdsl.air.integrations import keras

    assert keras.Callback is keras.ReportCheckpointCallback


def test_tf_model_definition_loads_hdf5_saved_under_a_keras_name(tmp_path: Any) -> None:
    """tf-keras wrote HDF5 into ``model.keras`` in TensorflowTrainer workers (tf_starter.py);
    ``get_model(model_definition=)`` reads it into a tf-keras or a Keras 3 model."""
    tf_keras = pytest.importorskip("tf_keras")
    import numpy as np
    import tensorflow as tf

    from airflowdsl.train.tensorflow import TensorflowCheckpoint

    def build(keras: Any) -> Any:
        return keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])

    trained = build(tf_keras)
    trained.save(str(tmp_path / "model.keras"), save_format="h5")
    assert (tmp_path / "model.keras").read_bytes()[:4] == b"\x89HDF"
    checkpoint = TensorflowCheckpoint(tmp_path)
    checkpoint.update_metadata({"keras": "tf_keras", "model": "model.keras"})
    x = np.array([[1.0], [2.0]], dtype=np.float32)
    for keras in (tf_keras, tf.keras):
        model = checkpoint.get_model(model_definition=lambda k=keras: build(k))
        np.testing.assert_allclose(model(x).numpy(), trained(x).numpy(), rtol=1e-6)
