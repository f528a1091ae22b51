"""Training loops for the TensorflowTrainer tests.

They live here (on the workers' PYTHONPATH, see tests/conftest.py) so Ray pickles them by
reference, as it would a user's own module. TensorFlow is imported inside the loops only.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

ROWS = 568  # breast_cancer has 569: an even count so streaming_split(equal=True) drops none


def breast_cancer_frame() -> pd.DataFrame:
    """Standardised breast_cancer features ``f0..f29`` and a float ``target``, ROWS rows."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = (data.data - data.data.mean(0)) / data.data.std(0)
    frame = pd.DataFrame(x[:ROWS], columns=[f"f{i}" for i in range(x.shape[1])])
    frame["target"] = data.target[:ROWS].astype("float32")
    return frame


def _save_weights(model: Any, out_dir: str, rank: int) -> None:
    flat = np.concatenate([np.ravel(w) for w in model.get_weights()])
    np.save(os.path.join(out_dir, f"weights_{rank}.npy"), flat)


def tf_keras_loop(config: dict[str, Any]) -> None:
    """tf.keras ``model.fit`` under MultiWorkerMirroredStrategy, counting every trained row."""
    import tensorflow as tf

    from airflowdsl.air import session
    from airflowdsl.train.tensorflow import ReportCheckpointCallback, prepare_dataset_shard

    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    class Counting(tf.keras.Sequential):
        def train_step(self, data: Any) -> Any:
            self.rows.assign_add(tf.cast(tf.shape(data[1])[0], tf.float32))
            return super().train_step(data)

    class RowsToLogs(tf.keras.callbacks.Callback):
        """Puts the rows trained on this epoch (all workers) into the epoch's logs."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = float(self.model.rows.numpy())

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs["rows"] = float(self.model.rows.numpy()) - self.start
            logs["tf_keras"] = float(type(self.model).__mro__[1].__module__.startswith("tf_keras"))

    with strategy.scope():
        model = Counting([tf.keras.Input((30,)), tf.keras.layers.Dense(16, activation="relu"),
                          tf.keras.layers.Dense(1, activation="sigmoid")])
        # a SUM-aggregated mirrored variable: every replica's increments, on every worker;
        # object.__setattr__ keeps it out of Keras' tracking (and the saved model)
        rows = tf.Variable(0.0, trainable=False, aggregation=tf.VariableAggregation.SUM)
        object.__setattr__(model, "rows", rows)
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                      metrics=["accuracy"])
    dataset = prepare_dataset_shard(session.get_dataset_shard("train"), label_column="target",
                                    batch_size=config["batch_size"])
    model.fit(dataset, epochs=config["epochs"], verbose=0,
              callbacks=[RowsToLogs(), ReportCheckpointCallback()])
    _save_weights(model, config["out_dir"], session.get_world_rank())


def keras3_loop(config: dict[str, Any]) -> None:
    """A Keras 3 model: ``fit_custom_loop`` trains it, then ``model.fit`` must fail clearly."""
    import keras
    import tensorflow as tf

    from airflowdsl.air import session
    from airflowdsl.train.tensorflow import fit_custom_loop, prepare_dataset_shard

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        optimizer = keras.optimizers.Adam(0.01)
    dataset = prepare_dataset_shard(session.get_dataset_shard("train"), label_column="target",
                                    batch_size=config["batch_size"])
    fit_custom_loop(strategy, model, optimizer, keras.losses.BinaryCrossentropy(), dataset,
                    epochs=config["epochs"], on_epoch_end=lambda _e, logs: session.report(logs))
    _save_weights(model, config["out_dir"], session.get_world_rank())
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.fit(dataset, epochs=1, verbose=0)  # Keras 3 + MultiWorkerMirroredStrategy: fails


def build_tf_keras_model() -> Any:
    """The architecture of ``tf_keras_loop``'s model, as AIR's ``model_definition``."""
    import tf_keras

    return tf_keras.Sequential([tf_keras.Input((30,)),
                                tf_keras.layers.Dense(16, activation="relu"),
                                tf_keras.layers.Dense(1, activation="sigmoid")])
