"""Tuner on a real local Ray: plain function trials and trainer trials.

The trial functions live in tests/resources/tune_loops.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from tune_loops import lr_loop, objective

from airflowdsl.air import RunConfig, ScalingConfig
from airflowdsl.train import DataParallelTrainer
from airflowdsl.tune import TuneConfig, Tuner, grid_search

pytestmark = pytest.mark.integration


def test_function_trainable_grid_search_finds_best(ray_session: None, tmp_path: Path) -> None:
    grid = Tuner(
        objective,
        param_space={"x": grid_search([0, 1, 2, 3])},
        tune_config=TuneConfig(metric="score", mode="max"),
        run_config=RunConfig(name="fn", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert len(grid) == 4
    assert grid.num_errors == 1 and "x=3" in str(grid.errors[0])
    best = grid.get_best_result()
    assert best.config == {"x": 2}
    assert best.metrics["score"] == 1
    assert len(best.metrics_dataframe) == 2
    assert best.checkpoint is not None
    assert best.checkpoint.to_dict() == {"x": 2, "step": 1}
    assert str(tmp_path) in best.checkpoint.path
    frame = grid.get_dataframe()
    assert len(frame) == 3 and "config/x" in frame.columns  # the failed trial never reported


def test_trainer_param_space_overrides_train_loop_config(ray_session: None,
                                                         tmp_path: Path) -> None:
    trainer = DataParallelTrainer(
        lr_loop,
        train_loop_config={"lr": 0.5, "epochs": 2},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name="dp", storage_path=str(tmp_path), verbose=0),
    )
    grid = Tuner(
        trainer,
        param_space={"train_loop_config": {"lr": grid_search([1.0, 0.1])}},
        tune_config=TuneConfig(metric="loss", mode="min"),
    ).fit()
    assert len(grid) == 2 and grid.num_errors == 0
    best = grid.get_best_result()
    assert best.config == {"train_loop_config": {"lr": 0.1}}
    assert best.metrics["loss"] == pytest.approx(0.5)
    assert list(best.metrics_dataframe["loss"]) == pytest.approx([1.0, 0.5])
    assert best.checkpoint is not None
    # the base config's "epochs" survived the merge; both workers ran
    assert best.checkpoint.to_dict() == {"lr": 0.1, "epoch": 1, "world_size": 2}
    assert str(tmp_path) in best.checkpoint.path
