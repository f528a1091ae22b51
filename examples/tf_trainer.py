"""Tabular regression with TensorflowTrainer (the shape of Ray AIR's TF "Tabular" example).

    python examples/tf_trainer.py [--workers 2] [--epochs 5]

Generated data (4,000 rows, 8 features), 2 workers training one tf.keras model with
``tf.distribute.MultiWorkerMirroredStrategy`` (each on its shard of ``datasets["train"]``),
a report with a checkpoint every epoch (``ReportCheckpointCallback``), then batch scoring
of a held-out set with ``BatchPredictor`` + ``TensorflowPredictor``. Starts a local Ray
(``num_cpus=2``) when none is running.

``tf.keras`` here is tf-keras: TensorflowTrainer sets ``TF_USE_LEGACY_KERAS=1`` in every
worker (Keras 3's ``model.fit`` fails under the multi-worker strategy; see
docs/training.md for the Keras 3 custom-loop route).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import pandas as pd
import ray

from airflowdsl.air import Checkpoint, CheckpointConfig, RunConfig, ScalingConfig, session
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.tensorflow import (
    TensorflowCheckpoint,
    TensorflowPredictor,
    TensorflowTrainer,
    prepare_dataset_shard,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
FEATURES = [f"x{i}" for i in range(8)]
LABEL = "y"


def make_data(rows: int = 4000, seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    coef = rng.normal(size=len(FEATURES))
    y = x @ coef + 0.5 * np.sin(3 * x[:, 0]) + rng.normal(scale=0.1, size=rows)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame[LABEL] = y.astype(np.float32)
    return frame


def train_loop_per_worker(config: dict) -> None:
    import tensorflow as tf  # in the worker: after TF_USE_LEGACY_KERAS=1 was set

    from airflowdsl.train.tensorflow import ReportCheckpointCallback

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads the TF_CONFIG we set
    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.Input((len(FEATURES),)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(1),
        ])
        model.compile(optimizer=tf.keras.optimizers.Adam(config["lr"]), loss="mse")
    initial_epoch = 0
    resume = session.get_checkpoint()  # set after a restart or with resume_from_checkpoint
    if resume is not None:
        TensorflowCheckpoint.from_checkpoint(resume).get_model(model)  # weights into `model`
        initial_epoch = resume.get_metadata().get("epoch", -1) + 1
    # this worker's shard as a tf.data.Dataset that the strategy trains on whole
    dataset = prepare_dataset_shard(session.get_dataset_shard("train"), feature_columns=FEATURES,
                                    label_column=LABEL, batch_size=config["batch_size"])
    model.fit(dataset, epochs=config["epochs"], initial_epoch=initial_epoch, verbose=0,
              callbacks=[ReportCheckpointCallback(metrics={"train_loss": "loss"})])


def train(train_ds: ray.data.Dataset, *, workers: int, epochs: int, storage: str) -> Checkpoint:
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config={"lr": 1e-2, "epochs": epochs, "batch_size": 32},
        scaling_config=ScalingConfig(num_workers=workers),
        run_config=RunConfig(name="tf_tabular", storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
        datasets={"train": train_ds},
    )
    result = trainer.fit()
    print(result.metrics_dataframe[["train_loss", "training_iteration", "time_total_s"]]
          .to_string(index=False))
    assert result.checkpoint is not None
    return result.checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    frame = make_data()
    train_frame, test_frame = frame.iloc[:3200], frame.iloc[3200:]  # 3,200 rows: even split
    with tempfile.TemporaryDirectory(prefix="airflowdsl-example-") as storage:
        checkpoint = train(ray.data.from_pandas(train_frame), workers=args.workers,
                           epochs=args.epochs, storage=storage)
        predictor = BatchPredictor.from_checkpoint(checkpoint, TensorflowPredictor)
        scored = predictor.predict(ray.data.from_pandas(test_frame), feature_columns=FEATURES,
                                   keep_columns=[LABEL]).to_pandas()
    mse = float(np.mean((scored["predictions"] - scored[LABEL]) ** 2))
    print(f"held-out rows: {len(scored)}  MSE: {mse:.4f}  (label variance "
          f"{float(test_frame[LABEL].var()):.4f})")


if __name__ == "__main__":
    main()
