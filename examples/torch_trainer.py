"""Tabular regression with TorchTrainer (the shape of Ray AIR's torch "Tabular" example).

    python examples/torch_trainer.py [--workers 2] [--epochs 5]

Generated data (4,000 rows, 8 features), 2 DDP workers each training on its shard of
``datasets["train"]``, a report with a checkpoint every epoch, then batch scoring of a
held-out set with ``BatchPredictor`` + ``TorchPredictor``. Starts a local Ray
(``num_cpus=2``) when none is running.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd
import ray
import torch
from torch import nn

from airflowdsl.air import Checkpoint, CheckpointConfig, RunConfig, ScalingConfig, session
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.torch import (
    TorchCheckpoint,
    TorchPredictor,
    TorchTrainer,
    get_device,
    prepare_model,
)

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


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(len(FEATURES), 32), nn.ReLU(), nn.Linear(32, 1))


def train_loop_per_worker(config: dict) -> None:
    model = build_model()
    start_epoch = 0
    resume = session.get_checkpoint()  # set after a restart or with resume_from_checkpoint
    if resume is not None:
        model = TorchCheckpoint.from_checkpoint(resume).get_model(model)
        start_epoch = resume.get_metadata().get("epoch", -1) + 1
    model = prepare_model(model)  # DDP over the workers (a no-op for one)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    loss_fn = nn.MSELoss()
    shard = session.get_dataset_shard("train")  # this worker's part of the train set

    for epoch in range(start_epoch, config["epochs"]):
        total, rows = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=config["batch_size"],
                                              dtypes=torch.float32, device=get_device()):
            inputs = torch.stack([batch[c] for c in FEATURES], dim=1)
            loss = loss_fn(model(inputs).squeeze(1), batch[LABEL])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(inputs)
            rows += len(inputs)
        checkpoint = None
        if session.get_world_rank() == 0:  # one copy of the weights is enough
            checkpoint = TorchCheckpoint.from_model(model)
            checkpoint.update_metadata({"epoch": epoch})
        session.report({"epoch": epoch, "train_loss": total / max(rows, 1)}, checkpoint=checkpoint)


def train(train_ds: ray.data.Dataset, *, workers: int, epochs: int, storage: str) -> Checkpoint:
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"lr": 1e-2, "epochs": epochs, "batch_size": 64},
        scaling_config=ScalingConfig(num_workers=workers),
        run_config=RunConfig(name="torch_tabular", storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
        datasets={"train": train_ds},
    )
    result = trainer.fit()
    print(result.metrics_dataframe[["epoch", "train_loss", "training_iteration", "time_total_s"]]
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
        predictor = BatchPredictor.from_checkpoint(checkpoint, TorchPredictor)
        scored = predictor.predict(ray.data.from_pandas(test_frame), feature_columns=FEATURES,
                                   keep_columns=[LABEL]).to_pandas()
    mse = float(np.mean((scored["predictions"] - scored[LABEL]) ** 2))
    print(f"held-out rows: {len(scored)}  MSE: {mse:.4f}  (label variance "
          f"{float(test_frame[LABEL].var()):.4f})")


if __name__ == "__main__":
    main()
