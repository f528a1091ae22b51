"""The fit controller never keeps a checkpoint whose folder holds no data on its node
(a rank on another node wrote it to a storage_path that is not shared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.errors import TrainingFailedError
from airflowdsl.train.checkpoints import CheckpointManager


def test_a_checkpoint_missing_here_fails_the_fit(tmp_path: Path) -> None:
    manager = CheckpointManager(str(tmp_path), None)
    elsewhere = Checkpoint(tmp_path / "checkpoint_000001")  # written on another node
    elsewhere.set_preprocessor({"scaler": 1})  # what the controller itself writes into it
    with pytest.raises(TrainingFailedError, match="storage_path"):
        manager.register(elsewhere, {"loss": 1.0})
    assert manager.latest is None and manager.kept == []


def test_only_folders_with_data_are_adopted(tmp_path: Path) -> None:
    good = Checkpoint.from_dict({"w": 1}).to_directory(str(tmp_path / "checkpoint_000001"))
    Checkpoint(good).update_metadata({"training_iteration": 1})
    os.makedirs(tmp_path / "checkpoint_000002")
    Checkpoint(tmp_path / "checkpoint_000002").update_metadata({"training_iteration": 2})
    manager = CheckpointManager(str(tmp_path), None)
    latest = manager.adopt_existing()
    assert latest is not None and latest.path == good
    assert latest.to_dict() == {"w": 1}
