"""A DSL pipeline whose ``@af.train`` step runs a 2-worker TorchTrainer.

    make_data -> split -> fit (TorchTrainer, returns af.Checkpoint) -> evaluate

Run it:    airflowdsl run examples/torch_pipeline.py -p epochs=3
Compile:   python examples/torch_pipeline.py --compile
Importing this module starts nothing (no Ray, no torch).
"""

from __future__ import annotations

import sys
from typing import Annotated

from pydantic import Field

import airflowdsl as af

FEATURES = [f"x{i}" for i in range(8)]
LABEL = "y"


@af.ingest
def make_data(rows: Annotated[int, Field(gt=0)] = 4000, seed: int = 0) -> af.Dataset:
    """Generated tabular regression data: 8 features and a mildly non-linear label."""
    import numpy as np
    import pandas as pd
    import ray.data

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    y = x @ rng.normal(size=len(FEATURES)) + 0.5 * np.sin(3 * x[:, 0])
    frame = pd.DataFrame(x, columns=FEATURES)
    frame[LABEL] = y.astype(np.float32)
    return ray.data.from_pandas(frame)


@af.preprocess
def split(ds: af.Dataset, test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
          seed: int = 0) -> tuple[af.Dataset, af.Dataset]:
    train, test = ds.train_test_split(test_size=test_size, shuffle=True, seed=seed)
    return train, test


def train_loop_per_worker(config: dict) -> None:
    """Runs on every training worker (DDP); reports a checkpoint each epoch from rank 0."""
    import torch
    from torch import nn

    from airflowdsl.air import session
    from airflowdsl.train.torch import TorchCheckpoint, get_device, prepare_model

    model = prepare_model(nn.Sequential(nn.Linear(len(FEATURES), 32), nn.ReLU(), nn.Linear(32, 1)))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    shard = session.get_dataset_shard("train")
    for epoch in range(config["epochs"]):
        total, rows = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=64, dtypes=torch.float32,
                                              device=get_device()):
            inputs = torch.stack([batch[c] for c in FEATURES], dim=1)
            loss = nn.functional.mse_loss(model(inputs).squeeze(1), batch[LABEL])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, rows = total + loss.item() * len(inputs), rows + len(inputs)
        ckpt = TorchCheckpoint.from_model(model) if session.get_world_rank() == 0 else None
        session.report({"epoch": epoch, "train_loss": total / max(rows, 1)}, checkpoint=ckpt)


@af.train(num_cpus=0.5)
def fit(train: af.Dataset, epochs: Annotated[int, Field(ge=1)] = 5,
        lr: Annotated[float, Field(gt=0)] = 1e-2, workers: int = 2) -> af.Checkpoint:
    """Data-parallel training; the step's output is the final checkpoint."""
    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.torch import TorchTrainer

    result = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"epochs": epochs, "lr": lr},
        scaling_config=ScalingConfig(num_workers=workers),
        run_config=RunConfig(name="torch_pipeline"),
        datasets={"train": train},
    ).fit()
    assert result.checkpoint is not None
    return result.checkpoint


@af.predict
def evaluate(ckpt: af.Checkpoint, test: af.Dataset) -> dict[str, float]:
    """Held-out mean squared error of the checkpointed model."""
    import numpy as np

    from airflowdsl.train.torch import TorchPredictor

    frame = test.to_pandas()
    preds = TorchPredictor.from_checkpoint(ckpt).predict(frame[FEATURES])["predictions"]
    return {"mse": float(np.mean((preds.to_numpy() - frame[LABEL].to_numpy()) ** 2)),
            "n_test": float(len(frame))}


@af.pipeline
def torch_tabular(rows: Annotated[int, Field(gt=0)] = 4000, epochs: Annotated[int, Field(ge=1)] = 5,
                  lr: Annotated[float, Field(gt=0)] = 1e-2):
    train, test = split(make_data(rows=rows))
    return evaluate(fit(train, epochs=epochs, lr=lr), test)


if __name__ == "__main__":
    if "--compile" in sys.argv:
        compiled = torch_tabular.compile()
        print(f"{compiled.name}: {' -> '.join(compiled.order)}")
    else:
        run = torch_tabular.run()
        print(run.status, run.output)
