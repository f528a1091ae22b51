"""Tabular regression with TorchTrainer: preprocessor in the checkpoint, BatchPredictor.

    make_data -> split -> fit (2-worker TorchTrainer, an AIR StandardScaler fitted on train
      and stored in the checkpoint) -> predict (BatchPredictor on raw held-out rows)
      -> evaluate

Run it:    airflowdsl run pipelines/tabular_torch.py -p epochs=3
Importing this module starts nothing (no Ray, no torch).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

import airflowdsl as af

FEATURES = [f"x{i}" for i in range(8)]
LABEL = "y"


@af.ingest
def make_data(rows: Annotated[int, Field(gt=0)] = 4000, seed: int = 0) -> af.Dataset:
    """Generated data: 8 features on very different scales, a mildly non-linear label."""
    import numpy as np
    import pandas as pd
    import ray.data

    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, len(FEATURES)))
    y = z @ rng.normal(size=len(FEATURES)) + 0.5 * np.sin(3 * z[:, 0])
    scales = 10.0 ** np.arange(-2, len(FEATURES) - 2)  # 0.01 ... 100000: needs scaling
    frame = pd.DataFrame((z * scales + 3 * scales).astype(np.float32), columns=FEATURES)
    frame[LABEL] = y.astype(np.float32)
    return ray.data.from_pandas(frame)


@af.preprocess
def split(ds: af.Dataset, test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
          seed: int = 0) -> tuple[af.Dataset, af.Dataset]:
    train, test = ds.train_test_split(test_size=test_size, shuffle=True, seed=seed)
    return train, test


def train_loop_per_worker(config: dict) -> None:
    """Every worker (DDP): the shard arrives already scaled by the trainer's preprocessor."""
    import torch
    from torch import nn

    from airflowdsl.air import session
    from airflowdsl.train.torch import TorchCheckpoint, get_device, prepare_model

    torch.manual_seed(0)
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


@af.train
def fit(train: af.Dataset, epochs: Annotated[int, Field(ge=1)] = 5,
        lr: Annotated[float, Field(gt=0)] = 1e-2, workers: int = 2) -> af.Checkpoint:
    """Data-parallel training; the checkpoint holds the model and the fitted scaler."""
    from ray.data.preprocessors import StandardScaler

    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.torch import TorchTrainer

    result = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"epochs": epochs, "lr": lr},
        scaling_config=ScalingConfig(num_workers=workers),
        run_config=RunConfig(name="tabular_torch", verbose=0),
        datasets={"train": train},
        preprocessor=StandardScaler(columns=FEATURES),
    ).fit()
    assert result.checkpoint is not None
    return result.checkpoint


@af.predict
def predict(ckpt: af.Checkpoint, test: af.Dataset) -> af.Dataset:
    """BatchPredictor on the raw held-out rows (the checkpoint's scaler is applied)."""
    from airflowdsl.train.batch_predictor import BatchPredictor
    from airflowdsl.train.torch import TorchPredictor

    return BatchPredictor.from_checkpoint(ckpt, TorchPredictor).predict(
        test, feature_columns=FEATURES, keep_columns=[LABEL])


@af.predict
def evaluate(scored: af.Dataset) -> dict[str, float]:
    """Held-out mean squared error, and the label's variance for scale."""
    import numpy as np

    frame = scored.to_pandas()
    err = frame["predictions"].to_numpy() - frame[LABEL].to_numpy()
    return {"mse": float(np.mean(err ** 2)), "label_var": float(frame[LABEL].var()),
            "n_test": float(len(frame))}


@af.pipeline
def tabular_torch(rows: Annotated[int, Field(gt=0)] = 4000,
                  epochs: Annotated[int, Field(ge=1)] = 5,
                  lr: Annotated[float, Field(gt=0)] = 1e-2):
    train, test = split(make_data(rows=rows))
    return evaluate(predict(fit(train, epochs=epochs, lr=lr), test))


if __name__ == "__main__":
    run = tabular_torch.run()
    print(run.status, run.output)
