"""Breast-cancer classification with HorovodTrainer (PyTorch + Gloo, no horovodrun).

    bash scripts/build_horovod.sh        # once: Horovod 0.28.1 for the installed torch
    python examples/horovod_trainer.py [--workers 2] [--epochs 15]

scikit-learn's bundled breast_cancer data, standardised; 2 Horovod workers each train on
their shard of ``datasets["train"]`` with ``hvd.DistributedOptimizer`` (gradients
averaged by Gloo allreduce) after ``hvd.broadcast_parameters`` gave every rank rank 0's
weights. Metrics are averaged over the ranks with ``hvd.allreduce``; rank 0 saves a
``TorchCheckpoint``, which ``BatchPredictor`` + ``TorchPredictor`` then score on the
held-out rows. Starts a local Ray (``num_cpus=2``) when none is running.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd
import ray
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

from airflowdsl.air import Checkpoint, RunConfig, ScalingConfig, session
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.horovod import HorovodConfig, HorovodTrainer
from airflowdsl.train.torch import TorchCheckpoint, TorchPredictor

LABEL = "target"


def load_data(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Standardised features ``f0..f29`` + ``target``; 456 train rows (even), 113 test."""
    data = load_breast_cancer()
    x = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    features = [f"f{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x.astype(np.float32), columns=features)
    frame[LABEL] = data.target.astype(np.float32)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return frame.iloc[:456], frame.iloc[456:], features


def train_loop_per_worker(config: dict) -> None:
    import horovod.torch as hvd

    hvd.init()  # HorovodTrainer has set HOROVOD_RANK/SIZE/... and the rendezvous address
    features = config["features"]
    model = nn.Sequential(nn.Linear(len(features), 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"] * hvd.size())
    optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)  # every rank starts equal
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)
    loss_fn = nn.BCEWithLogitsLoss()
    shard = session.get_dataset_shard("train")  # this worker's part of the train set

    for epoch in range(config["epochs"]):
        total, correct, rows = 0.0, 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=config["batch_size"],
                                              dtypes=torch.float32):
            inputs = torch.stack([batch[c] for c in features], dim=1)
            logits = model(inputs).squeeze(1)
            loss = loss_fn(logits, batch[LABEL])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(inputs)
            correct += float(((logits > 0).float() == batch[LABEL]).sum())
            rows += len(inputs)
        # average over the ranks (each saw the same number of rows)
        stats = hvd.allreduce(torch.tensor([total / rows, correct / rows]), name="epoch_stats")
        checkpoint = None
        if hvd.rank() == 0:  # the weights are identical on every rank: one copy is enough
            checkpoint = TorchCheckpoint.from_model(model)
            checkpoint.update_metadata({"epoch": epoch})
        session.report({"epoch": epoch, "train_loss": float(stats[0]),
                        "train_accuracy": float(stats[1])}, checkpoint=checkpoint)


def train(train_frame: pd.DataFrame, features: list[str], *, workers: int, epochs: int,
          storage: str) -> Checkpoint:
    trainer = HorovodTrainer(
        train_loop_per_worker,
        train_loop_config={"lr": 5e-3, "epochs": epochs, "batch_size": 32, "features": features},
        horovod_config=HorovodConfig(timeout_s=120),
        scaling_config=ScalingConfig(num_workers=workers),
        run_config=RunConfig(name="horovod_breast_cancer", storage_path=storage),
        datasets={"train": ray.data.from_pandas(train_frame)},
    )
    result = trainer.fit()
    print(result.metrics_dataframe[["epoch", "train_loss", "train_accuracy", "time_total_s"]]
          .to_string(index=False))
    assert result.checkpoint is not None
    return result.checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    train_frame, test_frame, features = load_data()
    with tempfile.TemporaryDirectory(prefix="airflowdsl-example-") as storage:
        checkpoint = train(train_frame, features, workers=args.workers, epochs=args.epochs,
                           storage=storage)
        predictor = BatchPredictor.from_checkpoint(checkpoint, TorchPredictor)
        scored = predictor.predict(ray.data.from_pandas(test_frame), feature_columns=features,
                                   keep_columns=[LABEL]).to_pandas()
    accuracy = float(((scored["predictions"] > 0) == (scored[LABEL] > 0.5)).mean())
    print(f"held-out rows: {len(scored)}  accuracy: {accuracy:.3f}")


if __name__ == "__main__":
    main()
