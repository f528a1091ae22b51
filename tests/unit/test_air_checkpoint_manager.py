"""CheckpointManager: numbering on disk, num_to_keep pruning, score ordering."""

from __future__ import annotations

import os
from pathlib import Path

from airflowdsl.air import Checkpoint, CheckpointConfig
from airflowdsl.train.checkpoints import CheckpointManager


def _report(manager: CheckpointManager, run_dir: Path, iteration: int, **metrics: float) -> Checkpoint:
    ckpt = Checkpoint(Checkpoint.from_dict({"i": iteration}).to_directory(
        run_dir / f"checkpoint_{iteration:06d}"))
    manager.register(ckpt, {"training_iteration": iteration, **metrics})
    return ckpt


def _on_disk(run_dir: Path) -> list[str]:
    return sorted(p for p in os.listdir(run_dir) if p.startswith("checkpoint_"))


def test_num_to_keep_keeps_the_newest_without_a_score(tmp_path: Path) -> None:
    manager = CheckpointManager(str(tmp_path), CheckpointConfig(num_to_keep=2))
    for i in range(1, 5):
        _report(manager, tmp_path, i, loss=1.0 / i)
    assert _on_disk(tmp_path) == ["checkpoint_000003", "checkpoint_000004"]
    assert [c.to_dict()["i"] for c, _ in manager.ranked()] == [4, 3]
    assert manager.best() == manager.latest


def test_score_order_min_keeps_the_best_and_the_latest(tmp_path: Path) -> None:
    config = CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="loss",
                              checkpoint_score_order="min")
    manager = CheckpointManager(str(tmp_path), config)
    for i, loss in enumerate([0.5, 0.1, 0.3, 0.9], start=1):
        _report(manager, tmp_path, i, loss=loss)
    # the best (iteration 2) and the latest (4, kept so a restart can resume from it)
    assert _on_disk(tmp_path) == ["checkpoint_000002", "checkpoint_000004"]
    best = manager.best()
    assert best is not None and best.to_dict()["i"] == 2
    assert [m["loss"] for _, m in manager.ranked()] == [0.1, 0.9]


def test_score_order_max_and_missing_scores_rank_last(tmp_path: Path) -> None:
    config = CheckpointConfig(num_to_keep=3, checkpoint_score_attribute="acc")
    manager = CheckpointManager(str(tmp_path), config)
    _report(manager, tmp_path, 1, acc=0.7)
    _report(manager, tmp_path, 2)  # no score
    _report(manager, tmp_path, 3, acc=0.9)
    assert [m["training_iteration"] for _, m in manager.ranked()] == [3, 1, 2]


def test_a_new_manager_adopts_previous_checkpoints(tmp_path: Path) -> None:
    first = CheckpointManager(str(tmp_path), None)
    for i in (1, 2):
        _report(first, tmp_path, i, loss=float(i))
    again = CheckpointManager(str(tmp_path), None)
    latest = again.adopt_existing()
    assert latest is not None and latest.to_dict() == {"i": 2}
    assert [i for i, _ in again.existing()] == [1, 2]
    assert again.kept[0][1]["loss"] == 1.0  # metrics come back from the metadata
