"""Training loops for the TorchTrainer tests.

They live here (on the workers' PYTHONPATH, see tests/conftest.py) so Ray pickles them
by reference, as it would a user's own module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ["x0", "x1", "x2", "x3"]
WEIGHTS = np.array([1.5, -2.0, 0.5, 3.0])


def regression_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows: four features, ``y = X @ WEIGHTS + 1 + noise`` and a row ``id``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["y"] = x @ WEIGHTS + 1.0 + rng.normal(scale=0.01, size=n)
    frame["id"] = np.arange(n)
    return frame


def regression_loop(config: dict[str, Any]) -> None:
    """Linear regression with DDP; resumes from ``session.get_checkpoint()``.

    Reports ``loss``/``epoch``/``start_epoch``/``pid`` each epoch (checkpoint from rank 0)
    and writes the row ids it saw to ``config["ids_dir"]`` (when given). Fault injection:
    ``fail_rank``/``fail_epoch`` raises, ``exit_rank``/``exit_epoch`` kills the process on
    the first attempt only (a marker file remembers the attempt).
    """
    import torch

    from airflowdsl.air import Checkpoint, session
    from airflowdsl.train.torch import TorchCheckpoint, get_device, prepare_model

    rank = session.get_world_rank()
    torch.manual_seed(0)
    model = torch.nn.Linear(len(FEATURES), 1)
    start = 0
    resume = session.get_checkpoint()
    if resume is not None:  # a dict or a TorchCheckpoint: get_model reads both
        model = TorchCheckpoint.from_checkpoint(resume).get_model(model)
        start = int(resume.get_metadata()["epoch"]) + 1
    ddp = prepare_model(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=config.get("lr", 0.1))
    shard = session.get_dataset_shard("train")
    for epoch in range(start, config["epochs"]):
        _inject_faults(config, rank, epoch)
        seen: list[int] = []
        total, rows = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=config.get("batch_size", 32),
                                              dtypes=torch.float32, device=get_device()):
            x = torch.stack([batch[f] for f in FEATURES], dim=1)
            loss = torch.nn.functional.mse_loss(ddp(x).squeeze(1), batch["y"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
            rows += len(x)
            seen.extend(int(i) for i in batch["id"].tolist())
        if config.get("ids_dir"):
            Path(config["ids_dir"], f"rank{rank}_epoch{epoch}.json").write_text(json.dumps(seen))
        ckpt = None
        if rank == 0:
            if config.get("torch_checkpoint"):
                ckpt = TorchCheckpoint.from_model(ddp)
            else:
                ckpt = Checkpoint.from_dict({"model": model.state_dict()})
            ckpt.update_metadata({"epoch": epoch})
        session.report({"loss": total / max(rows, 1), "epoch": epoch, "rows": rows,
                        "start_epoch": start, "pid": os.getpid(),
                        "is_ddp": type(ddp).__name__ == "DistributedDataParallel"},
                       checkpoint=ckpt)


def _inject_faults(config: dict[str, Any], rank: int, epoch: int) -> None:
    if config.get("fail_rank") == rank and config.get("fail_epoch") == epoch:
        raise ValueError(f"boom on rank {rank} at epoch {epoch}")
    if config.get("exit_rank") == rank and config.get("exit_epoch") == epoch:
        marker = Path(config["marker"])
        if not marker.exists():
            marker.write_text("first attempt died here")
            os._exit(1)


def unequal_reports_loop(config: dict[str, Any]) -> None:
    """Rank 1 reports once more than rank 0 (no collectives, so nothing blocks)."""
    from airflowdsl.air import session

    for step in range(2 + session.get_world_rank()):
        session.report({"step": step})


def data_loader_loop(config: dict[str, Any]) -> None:
    """A plain torch DataLoader sharded with prepare_data_loader; writes what it saw."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from airflowdsl.air import session
    from airflowdsl.train.torch import prepare_data_loader

    rank = session.get_world_rank()
    dataset = TensorDataset(torch.arange(config["rows"]))
    loader = prepare_data_loader(DataLoader(dataset, batch_size=8, shuffle=True))
    epochs = [[int(v) for (batch,) in loader for v in batch] for _ in range(2)]
    Path(config["out_dir"], f"rank{rank}.json").write_text(json.dumps(epochs))
    session.report({"batches": len(loader)})


def gpu_loop(config: dict[str, Any]) -> None:
    """One DDP step on this worker's GPU; reports where the parameters and a batch live."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from airflowdsl.air import session
    from airflowdsl.train.torch import get_device, prepare_data_loader, prepare_model

    model = prepare_model(torch.nn.Linear(4, 1))
    loader = prepare_data_loader(DataLoader(TensorDataset(torch.randn(16, 4)), batch_size=8))
    (x,) = next(iter(loader))
    loss = model(x).pow(2).mean()
    loss.backward()
    import torch.distributed as dist

    session.report({"device": str(get_device()),
                    "param_devices": sorted({str(p.device) for p in model.parameters()}),
                    "batch_device": str(x.device), "backend": dist.get_backend(),
                    "visible": os.environ.get("CUDA_VISIBLE_DEVICES", "")})
