"""The session API outside a worker says so; inside, it reports to its sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflowdsl.air import Checkpoint, session


@pytest.mark.parametrize("call", [
    lambda: session.report({"loss": 1.0}),
    lambda: session.get_dataset_shard("train"),
    session.get_checkpoint,
    session.get_world_rank,
    session.get_world_size,
    session.get_local_rank,
])
def test_outside_a_worker_raises_runtime_error_saying_so(call) -> None:  # noqa: ANN001
    assert session.get_session() is None
    with pytest.raises(RuntimeError, match="outside a training worker"):
        call()


def test_inside_a_session_reports_and_persists_rank0_checkpoints(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = []
    sess = session.WorkerSession(world_rank=0, world_size=2, local_rank=0, local_world_size=2,
                                 node_rank=0, run_dir=str(tmp_path), start_iteration=3,
                                 dataset_shards={"train": "shard"}, sink=records.append)
    session.install_session(sess)
    try:
        assert session.get_world_size() == 2 and session.get_dataset_shard() == "shard"
        with pytest.raises(KeyError, match="no dataset named 'valid'"):
            session.get_dataset_shard("valid")
        with pytest.raises(TypeError, match="dict of metrics"):
            session.report(1.0)  # type: ignore[arg-type]
        session.report({"loss": 0.5}, checkpoint=Checkpoint.from_dict({"w": 1}))
    finally:
        session.install_session(None)
    (record,) = records
    assert record["training_iteration"] == 4 and record["metrics"] == {"loss": 0.5}
    saved = Checkpoint(record["checkpoint_path"])
    assert saved.path == str(tmp_path / "checkpoint_000004")
    assert saved.to_dict() == {"w": 1}
    assert saved.get_metadata()["training_iteration"] == 4


def test_installed_restores_the_previous_session(tmp_path: Path) -> None:
    outer = session.WorkerSession(world_rank=0, world_size=1, local_rank=0, local_world_size=1,
                                  node_rank=0, run_dir=str(tmp_path))
    inner = session.WorkerSession(world_rank=1, world_size=2, local_rank=1, local_world_size=2,
                                  node_rank=0, run_dir=str(tmp_path))
    with session.installed(outer):
        with pytest.raises(ZeroDivisionError), session.installed(inner):
            assert session.get_world_rank() == 1
            1 / 0  # noqa: B018
        assert session.get_session() is outer
    assert session.get_session() is None
