"""Trial functions and training loops for tests/integration/test_tuner.py.

They live here (on the workers' PYTHONPATH, see tests/conftest.py) because Ray pickles
module-level functions by reference.
"""

from __future__ import annotations

from airflowdsl.air import Checkpoint, session


def objective(config: dict) -> None:
    """Best at x == 2; x == 3 fails."""
    if config["x"] == 3:
        raise ValueError("x=3 is not allowed")
    for step in range(2):
        ckpt = Checkpoint.from_dict({"x": config["x"], "step": step}) if step == 1 else None
        session.report({"score": -((config["x"] - 2) ** 2) + step}, checkpoint=ckpt)


def lr_loop(config: dict) -> None:
    """Loss is lowest at lr == 0.1 and falls with the epoch."""
    for epoch in range(config["epochs"]):
        loss = abs(config["lr"] - 0.1) + 1.0 / (epoch + 1)
        ckpt = None
        if session.get_world_rank() == 0:
            ckpt = Checkpoint.from_dict({"lr": config["lr"], "epoch": epoch,
                                         "world_size": session.get_world_size()})
        session.report({"loss": loss}, checkpoint=ckpt)
