"""TensorFlow's AIR shapes without Ray: ``model_definition=``, ``predict(dtype=tf.float32)``,
clear errors when a BatchPredictor is built, the driver/worker Keras agreement check and
AIR's import path of the Keras callback. Real TensorFlow, tf-keras and Keras 3."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import numpy as np
import pandas as pd
import pytest

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("tensorflow / tf-keras not installed", allow_module_level=True)

from airflowdsl.air import Checkpoint, ScalingConfig  # noqa: E402
from airflowdsl.errors import Keras3ModelError  # noqa: E402
from airflowdsl.train.batch_predictor import BatchPredictor  # noqa: E402
from airflowdsl.train.tensorflow import (  # noqa: E402
    TensorflowCheckpoint,
    TensorflowPredictor,
    TensorflowTrainer,
)

COLUMNS = ["a", "b", "c"]


def tf_keras_model() -> Any:
    import tf_keras

    tf_keras.utils.set_random_seed(1)
    return tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2),
                                tf_keras.layers.Dense(1)])


def keras3_model() -> Any:  # what `from tensorflow import keras` builds without the env var
    keras = importlib.import_module("keras._tf_keras.keras")
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])


@pytest.fixture(scope="module")
def trained() -> tuple[Any, TensorflowCheckpoint]:
    model = tf_keras_model()
    return model, TensorflowCheckpoint.from_model(model)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(5, 3)), columns=COLUMNS)  # float64


def test_get_model_loads_weights_into_a_model_definition(trained: Any) -> None:
    model, ckpt = trained
    x = _frame().to_numpy("float32")
    for definition in (keras3_model, tf_keras_model):  # a function, either Keras
        restored = ckpt.get_model(model_definition=definition)
        assert np.allclose(restored(x), model(x), atol=1e-6)
    assert np.allclose(ckpt.get_model(keras3_model())(x), model(x), atol=1e-6)  # a model
    with pytest.raises(TypeError, match="not both"):
        ckpt.get_model(tf_keras_model(), model_definition=tf_keras_model)
    with pytest.raises(TypeError, match="model_definition must be"):
        ckpt.get_model(model_definition="model.keras")
    with pytest.raises(TypeError, match="not a Keras model"):
        ckpt.get_model(model_definition=lambda: 42)


def test_predictor_model_definition_and_tf_dtype(trained: Any) -> None:
    import tensorflow as tf

    model, ckpt = trained
    frame = _frame()
    expected = np.asarray(model(frame.to_numpy("float32")))[:, 0]
    predictor = TensorflowPredictor.from_checkpoint(ckpt, keras3_model)  # AIR's positional
    for dtype in (tf.float32, {c: tf.float32 for c in COLUMNS}, None, "float32"):
        out = predictor.predict(frame, dtype=dtype)
        assert np.allclose(out["predictions"], expected, atol=1e-6)
    as_array = predictor.predict(frame.to_numpy(), dtype=tf.float64)  # an array in: an array
    assert isinstance(as_array, np.ndarray) and np.allclose(as_array, expected, atol=1e-5)
    with pytest.raises(TypeError, match=r"takes \['dtype'\]"):
        predictor.predict(frame, dtypes=tf.float32)
    # AIR 2.2's constructor: a definition and weights
    built = TensorflowPredictor(model_definition=keras3_model, model_weights=model.get_weights())
    assert np.allclose(built.predict(frame)["predictions"], expected, atol=1e-6)
    with pytest.raises(TypeError, match="model_definition="):
        TensorflowPredictor()


def test_batch_predictor_rejects_bad_predictor_arguments_when_built(trained: Any) -> None:
    _, ckpt = trained
    with pytest.raises(TypeError, match=r"unexpected keyword.*'model_definition'.*use_gpu"):
        BatchPredictor.from_checkpoint(ckpt, TensorflowPredictor, model_defintion=keras3_model)
    with pytest.raises(TypeError, match="model_definition must be"):
        BatchPredictor.from_checkpoint(ckpt, TensorflowPredictor, model_definition=3)
    with pytest.raises(TypeError, match="not both"):
        BatchPredictor.from_checkpoint(ckpt, TensorflowPredictor, model=keras3_model,
                                       model_definition=keras3_model)
    BatchPredictor.from_checkpoint(ckpt, TensorflowPredictor, model_definition=keras3_model,
                                   use_gpu=False)  # fine


def _loop_with(keras: Any) -> Any:
    def build() -> Any:
        return keras.Sequential([keras.layers.Dense(1)])

    def loop(config: dict[str, Any]) -> None:
        build()

    return loop


def test_driver_keras3_tf_keras_fails_at_construction_saying_what_to_import() -> None:
    import keras as keras3
    import tf_keras

    driver_tf_keras = importlib.import_module("keras._tf_keras.keras")
    scaling = ScalingConfig(num_workers=2)
    with pytest.raises(Keras3ModelError) as info:
        TensorflowTrainer(_loop_with(driver_tf_keras), scaling_config=scaling)
    message = str(info.value)
    assert "keras -> keras._tf_keras.keras (in _loop_with.<locals>.build)" in message
    assert "import tf_keras as keras" in message and "TF_USE_LEGACY_KERAS=1" in message
    layers = importlib.import_module("keras._tf_keras.keras.layers")

    def loop(config: dict[str, Any]) -> None:
        layers.Dense(1)

    with pytest.raises(Keras3ModelError, match="layers -> keras._tf_keras.keras.layers"):
        TensorflowTrainer(loop, scaling_config=scaling)
    # tf-keras, Keras 3 asked for by name (trained with fit_custom_loop), or Keras 3
    # workers (legacy_keras=False): nothing to disagree about
    TensorflowTrainer(_loop_with(tf_keras), scaling_config=scaling)
    TensorflowTrainer(_loop_with(keras3), scaling_config=scaling)
    from airflowdsl.train.tensorflow import TensorflowConfig

    TensorflowTrainer(_loop_with(driver_tf_keras), scaling_config=scaling,
                      tensorflow_config=TensorflowConfig(legacy_keras=False))


def test_keras_callback_under_airs_import_path() -> None:
    from airflowdsl.air.integrations.keras import ReportCheckpointCallback
    from airflowdsl.train import tensorflow as tfmod

    assert ReportCheckpointCallback is tfmod.ReportCheckpointCallback
    import tf_keras

    assert issubclass(ReportCheckpointCallback, tf_keras.callbacks.Callback)
    # AIR 2.2-2.4's name for it (AIR's tf_starter.py imports it)
    assert importlib.import_module("airflowdsl.air.integrations.keras").Callback is \
        ReportCheckpointCallback
    with pytest.raises(AttributeError):
        importlib.import_module("airflowdsl.air.integrations.keras").KerasCallback  # noqa: B018


def test_checkpoint_is_a_plain_checkpoint_too(trained: Any) -> None:
    _, ckpt = trained
    plain = Checkpoint(ckpt.path)
    assert TensorflowCheckpoint.from_checkpoint(plain).get_model() is not None
