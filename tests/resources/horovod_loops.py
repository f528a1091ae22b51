"""Training loops for the HorovodTrainer tests (on the workers' PYTHONPATH, see conftest)."""

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


def _flat_params(model: Any) -> np.ndarray:
    import torch

    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def horovod_regression_loop(config: dict[str, Any]) -> None:
    """Linear regression with ``hvd.DistributedOptimizer``.

    Each rank starts from its own random weights (seed = rank) so that
    ``hvd.broadcast_parameters`` visibly matters. Every epoch reports the loss averaged
    over the ranks and every rank's parameter sum (``hvd.allgather_object``); at the end
    each rank writes its parameters, the row ids it saw and what Horovod told it to
    ``config["out_dir"]``. ``fail_rank``/``fail_epoch`` raises there instead.
    """
    import horovod.torch as hvd
    import torch

    from airflowdsl.air import session
    from airflowdsl.train.torch import TorchCheckpoint

    hvd.init()
    rank = session.get_world_rank()
    torch.manual_seed(rank)
    model = torch.nn.Linear(len(FEATURES), 1)
    init_sums = hvd.allgather_object(float(_flat_params(model).sum()))
    opt = torch.optim.SGD(model.parameters(), lr=config.get("lr", 0.05) * hvd.size())
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    shard = session.get_dataset_shard("train")
    seen: list[int] = []
    for epoch in range(config["epochs"]):
        if epoch == config.get("fail_epoch") and rank == config.get("fail_rank"):
            raise RuntimeError(f"injected failure on rank {rank}")
        total, rows = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=config.get("batch_size", 32),
                                              dtypes=torch.float32):
            x = torch.stack([batch[f] for f in FEATURES], dim=1)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["y"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(x)
            rows += len(x)
            if epoch == 0:
                seen.extend(int(i) for i in batch["id"].tolist())
        mean_loss = float(hvd.allreduce(torch.tensor(total / max(rows, 1)), name="loss"))
        param_sums = hvd.allgather_object(float(_flat_params(model).sum()))
        ckpt = None
        if rank == 0:
            ckpt = TorchCheckpoint.from_state_dict(model.state_dict())
            ckpt.update_metadata({"epoch": epoch})
        session.report({"loss": mean_loss, "epoch": epoch, "rows": rows,
                        "param_sums": param_sums, "init_sums": init_sums,
                        "hvd_size": hvd.size()}, checkpoint=ckpt)
    out = Path(config["out_dir"])
    np.save(out / f"rank{rank}_params.npy", _flat_params(model))
    (out / f"rank{rank}.json").write_text(json.dumps({
        "hvd_rank": hvd.rank(), "hvd_size": hvd.size(), "hvd_local_rank": hvd.local_rank(),
        "hvd_local_size": hvd.local_size(), "hvd_cross_size": hvd.cross_size(),
        "session_rank": rank, "ids": seen,
        "env": {k: v for k, v in os.environ.items() if k.startswith("HOROVOD_")},
    }))
