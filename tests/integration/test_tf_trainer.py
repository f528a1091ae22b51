"""TensorflowTrainer on real Ray + real TensorFlow: 2 workers on the 2-CPU fixture.

Two fits (TensorFlow is slow to import in each worker): a tf-keras ``model.fit`` that
carries the training, row-count, weight-equality and checkpoint/predictor assertions, and
a Keras 3 fit that trains with the custom-loop helper and then shows the clear error
``model.fit`` gives. The loops live in tests/resources/tf_loops.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("tensorflow / tf-keras not installed", allow_module_level=True)

from tf_loops import (  # noqa: E402
    ROWS,
    breast_cancer_frame,
    build_tf_keras_model,
    keras3_loop,
    tf_keras_loop,
)

from airflowdsl.air import Result, RunConfig, ScalingConfig  # noqa: E402
from airflowdsl.train import TrainingFailedError  # noqa: E402
from airflowdsl.train.tensorflow import (  # noqa: E402
    Keras3ModelError,
    TensorflowCheckpoint,
    TensorflowPredictor,
    TensorflowTrainer,
    prepare_model,
)

pytestmark = pytest.mark.integration

EPOCHS = 3
FEATURES = [f"f{i}" for i in range(30)]


def _trainer(loop: Any, tmp: Path, name: str) -> TensorflowTrainer:
    import ray.data

    out = tmp / f"{name}-weights"
    out.mkdir()
    return TensorflowTrainer(
        loop,
        train_loop_config={"epochs": EPOCHS, "batch_size": 16, "out_dir": str(out)},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name=name, storage_path=str(tmp)),
        datasets={"train": ray.data.from_pandas(breast_cancer_frame())},
    )


def _weights(tmp: Path, name: str) -> list[np.ndarray]:
    return [np.load(tmp / f"{name}-weights" / f"weights_{rank}.npy") for rank in (0, 1)]


@pytest.fixture(scope="module")
def tf_keras_fit(ray_session: None, tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Result, Path]:
    tmp = tmp_path_factory.mktemp("tf")
    return _trainer(tf_keras_loop, tmp, "tfk").fit(), tmp


def test_tf_keras_fit_trains_under_the_strategy(tf_keras_fit: tuple[Result, Path]) -> None:
    result, tmp = tf_keras_fit
    frame = result.metrics_dataframe
    assert list(frame["training_iteration"]) == list(range(1, EPOCHS + 1))
    assert (frame["tf_keras"] == 1.0).all()  # TF_USE_LEGACY_KERAS=1: tf.keras is tf-keras
    assert frame["loss"].iloc[-1] < frame["loss"].iloc[0]
    assert frame["accuracy"].iloc[-1] > 0.95
    w0, w1 = _weights(tmp, "tfk")
    assert np.array_equal(w0, w1)  # both workers end on identical weights


def test_every_row_is_trained_on_each_epoch(tf_keras_fit: tuple[Result, Path]) -> None:
    # a known-length dataset would give ROWS / 2 here (the strategy re-splits each batch)
    assert list(tf_keras_fit[0].metrics_dataframe["rows"]) == [float(ROWS)] * EPOCHS


def test_checkpoint_and_predictor_round_trip(tf_keras_fit: tuple[Result, Path]) -> None:
    result, tmp = tf_keras_fit
    import tf_keras

    assert result.checkpoint is not None
    custom = {"Counting": tf_keras.Sequential}  # the loop's row-counting subclass
    ckpt = TensorflowCheckpoint.from_checkpoint(result.checkpoint)
    model = ckpt.get_model(custom_objects=custom)
    assert type(model).__module__.startswith("tf_keras")
    restored = np.concatenate([np.ravel(w) for w in model.get_weights()])
    assert np.allclose(restored, _weights(tmp, "tfk")[0])  # last epoch's checkpoint
    frame = breast_cancer_frame()
    predictor = TensorflowPredictor.from_checkpoint(result.checkpoint, custom_objects=custom)
    out = predictor.predict(frame[FEATURES])
    assert list(out.columns) == ["predictions"] and len(out) == ROWS
    accuracy = ((out["predictions"].to_numpy() > 0.5) == frame["target"].to_numpy()).mean()
    assert accuracy > 0.95


def test_batch_predictor_actors_with_model_definition_and_tf_dtype(
        tf_keras_fit: tuple[Result, Path]) -> None:
    """AIR's BatchPredictor call: the checkpoint's weights loaded into model_definition's
    model in each actor of the pool, dtype a TensorFlow DType."""
    import ray.data
    import tensorflow as tf

    from airflowdsl.train.batch_predictor import BatchPredictor

    result, tmp = tf_keras_fit
    assert result.checkpoint is not None
    frame = breast_cancer_frame()
    batch = BatchPredictor.from_checkpoint(result.checkpoint, TensorflowPredictor,
                                           model_definition=build_tf_keras_model)
    scored = batch.predict(ray.data.from_pandas(frame), feature_columns=FEATURES,
                           keep_columns=["target"], dtype=tf.float32, fast_path=False,
                           batch_size=128).to_pandas()
    assert batch.last_path == "pool" and len(scored) == ROWS
    assert list(scored["target"]) == list(frame["target"])  # row order kept
    accuracy = ((scored["predictions"].to_numpy() > 0.5) == frame["target"].to_numpy()).mean()
    assert accuracy > 0.95


def test_keras3_custom_loop_trains_and_keras3_fit_fails_clearly(
        ray_session: None, tmp_path: Path) -> None:
    with pytest.raises(TrainingFailedError) as info:
        _trainer(keras3_loop, tmp_path, "k3").fit()
    message = str(info.value)
    assert "Keras3ModelError" in message and "Keras 3 model" in message
    assert "tf.keras" in message and "fit_custom_loop" in message
    frame = info.value.result.metrics_dataframe  # the custom loop's reports came first
    assert list(frame["rows"]) == [float(ROWS)] * EPOCHS
    assert frame["loss"].iloc[-1] < frame["loss"].iloc[0] and frame["loss"].iloc[-1] < 0.2
    w0, w1 = _weights(tmp_path, "k3")
    assert np.array_equal(w0, w1)


def test_keras3_model_detected_and_checkpointed(tmp_path: Path) -> None:
    import keras
    import tf_keras

    k3 = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    legacy = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(1)])
    with pytest.raises(Keras3ModelError, match="tf.keras"):
        prepare_model(k3)
    assert prepare_model(legacy) is legacy
    x = np.ones((4, 3), dtype="float32")
    for model in (k3, legacy):  # each flavour saved and restored by its own Keras
        restored = TensorflowCheckpoint.from_model(model).get_model()
        assert type(restored).__module__.split(".")[0] == type(model).__module__.split(".")[0]
        assert np.allclose(restored(x), model(x))


def test_import_is_lazy_and_missing_framework_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    code = ("import sys, airflowdsl.train.tensorflow as m; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'eager'")
    subprocess.run([sys.executable, "-c", code], check=True)
    import airflowdsl.train.tensorflow_checkpoint as tfck  # require_package lives there

    monkeypatch.setattr(tfck.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"airflowdsl\[tensorflow\]"):
        TensorflowTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=1))
