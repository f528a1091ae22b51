"""TorchTrainer on real Ray + real torch: 2 workers on the 2-CPU fixture.

One module-scoped fit carries most assertions (loss, shards, checkpoints, the metrics
frame); each failure mode gets its own small fit. The loops live in
tests/resources/torch_loops.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402
import torch_loops  # noqa: E402
from torch_loops import FEATURES, regression_frame, regression_loop  # noqa: E402

from airflowdsl.air import (  # noqa: E402
    CheckpointConfig,
    FailureConfig,
    Result,
    RunConfig,
    ScalingConfig,
)
from airflowdsl.train import TrainingFailedError  # noqa: E402
from airflowdsl.train.torch import TorchCheckpoint, TorchPredictor, TorchTrainer  # noqa: E402

pytestmark = pytest.mark.integration

ROWS = 512  # even: streaming_split(2, equal=True) drops a remainder row otherwise
EPOCHS = 4


def _trainer(tmp: Path, name: str, config: dict[str, Any], *, rows: int = ROWS,
             workers: int = 2, max_failures: int = 0, num_to_keep: int | None = None,
             lazy: bool = False, **kwargs: Any) -> TorchTrainer:
    """``lazy``: a not-yet-executed Dataset (streamed to the workers by a SplitCoordinator);
    else a materialized one (``from_pandas``: split into blocks in the driver)."""
    import ray.data

    data = ray.data.from_pandas(regression_frame(rows))
    return TorchTrainer(
        regression_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=workers),
        run_config=RunConfig(name=name, storage_path=str(tmp),
                             checkpoint_config=CheckpointConfig(num_to_keep=num_to_keep),
                             failure_config=FailureConfig(max_failures=max_failures)),
        datasets={"train": data.limit(rows) if lazy else data},
        **kwargs,
    )


@pytest.fixture(scope="module")
def fitted(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    tmp = tmp_path_factory.mktemp("torch_fit")
    ids = tmp / "ids"
    ids.mkdir()
    trainer = _trainer(tmp, "main", {"epochs": EPOCHS, "ids_dir": str(ids),
                                     "torch_checkpoint": True}, num_to_keep=2, lazy=True)
    return trainer.fit(), tmp


def test_loss_goes_down_and_one_row_per_report(fitted: tuple[Result, Path]) -> None:
    result, _ = fitted
    df = result.metrics_dataframe
    assert len(df) == EPOCHS
    assert list(df["epoch"]) == list(range(EPOCHS))
    assert list(df["training_iteration"]) == list(range(1, EPOCHS + 1))
    assert "time_total_s" in df.columns
    assert df["loss"].iloc[-1] < 0.1 * df["loss"].iloc[0]
    assert df["is_ddp"].all()
    assert (df["rows"] == ROWS // 2).all()
    assert result.metrics["epoch"] == EPOCHS - 1


def _assert_disjoint_and_complete(ids_dir: Path, epochs: range) -> None:
    for epoch in epochs:
        seen = [set(json.loads((ids_dir / f"rank{r}_epoch{epoch}.json").read_text()))
                for r in range(2)]
        assert seen[0] and seen[1]
        assert not seen[0] & seen[1]
        assert seen[0] | seen[1] == set(range(ROWS))


def test_each_worker_sees_a_disjoint_shard_and_together_all_rows(fitted: tuple[Result, Path]) -> None:
    _, tmp = fitted  # a lazy dataset: streaming_split
    _assert_disjoint_and_complete(tmp / "ids", range(EPOCHS))


def test_checkpoints_round_trip_and_num_to_keep_prunes(fitted: tuple[Result, Path]) -> None:
    result, _ = fitted
    assert result.path is not None
    kept = sorted(p for p in os.listdir(result.path) if p.startswith("checkpoint_"))
    assert kept == [f"checkpoint_{EPOCHS - 1:06d}", f"checkpoint_{EPOCHS:06d}"]
    assert len(result.best_checkpoints) == 2
    assert result.checkpoint is not None
    assert result.checkpoint.get_metadata()["epoch"] == EPOCHS - 1
    model = TorchCheckpoint.from_checkpoint(result.checkpoint).get_model()
    assert isinstance(model, torch.nn.Linear)  # DDP unwrapped
    np.testing.assert_allclose(model.weight.detach().numpy()[0], torch_loops.WEIGHTS, atol=0.2)
    frame = regression_frame(64, seed=1)
    preds = TorchPredictor.from_checkpoint(result.checkpoint).predict(frame[FEATURES])
    assert list(preds.columns) == ["predictions"]
    np.testing.assert_allclose(preds["predictions"], frame["y"], atol=0.5)


def test_rerun_with_the_same_name_resumes_from_previous_checkpoints(
        fitted: tuple[Result, Path]) -> None:
    _, tmp = fitted
    ids = tmp / "ids_rerun"
    ids.mkdir()
    result = _trainer(tmp, "main", {"epochs": EPOCHS + 1, "ids_dir": str(ids)},
                      num_to_keep=2).fit()
    _assert_disjoint_and_complete(ids, range(EPOCHS, EPOCHS + 1))  # materialized: split here
    df = result.metrics_dataframe
    assert list(df["start_epoch"]) == [EPOCHS]
    assert list(df["training_iteration"]) == [EPOCHS + 1]
    kept = sorted(p for p in os.listdir(result.path or "") if p.startswith("checkpoint_"))
    assert kept == [f"checkpoint_{EPOCHS:06d}", f"checkpoint_{EPOCHS + 1:06d}"]


def test_exception_on_rank_1_fails_fast_with_its_traceback(ray_session: None,
                                                           tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "boom", {"epochs": 3, "fail_rank": 1, "fail_epoch": 1})
    with pytest.raises(TrainingFailedError) as info:
        trainer.fit()
    message = str(info.value)
    assert "rank 1" in message
    assert "boom on rank 1 at epoch 1" in message
    assert 'raise ValueError(f"boom on rank {rank} at epoch {epoch}")' in message
    assert "torch_loops.py" in message


def test_killed_worker_recovers_from_the_latest_checkpoint(ray_session: None,
                                                          tmp_path: Path) -> None:
    marker = tmp_path / "died"
    config = {"epochs": 5, "exit_rank": 1, "exit_epoch": 2, "marker": str(marker)}
    result = _trainer(tmp_path, "recover", config, max_failures=1).fit()
    assert marker.exists()  # the first attempt really died
    df = result.metrics_dataframe
    assert list(df["epoch"]) == [0, 1, 2, 3, 4]
    assert list(df["training_iteration"]) == [1, 2, 3, 4, 5]
    assert df["start_epoch"].iloc[-1] in (1, 2)  # resumed from the last checkpoint it saw
    assert df["loss"].iloc[-1] < df["loss"].iloc[0]


def test_killed_worker_fails_cleanly_without_retries(ray_session: None, tmp_path: Path) -> None:
    config = {"epochs": 5, "exit_rank": 1, "exit_epoch": 2, "marker": str(tmp_path / "died")}
    with pytest.raises(TrainingFailedError, match="rank 1"):
        _trainer(tmp_path, "no-retry", config, max_failures=0).fit()


def test_unequal_report_counts_fail_with_a_message(ray_session: None, tmp_path: Path) -> None:
    trainer = TorchTrainer(torch_loops.unequal_reports_loop,
                           scaling_config=ScalingConfig(num_workers=2),
                           run_config=RunConfig(storage_path=str(tmp_path)))
    with pytest.raises(TrainingFailedError, match="unequal number of times"):
        trainer.fit()


def test_local_mode_runs_in_process_and_resumes_from_a_given_checkpoint(
        fitted: tuple[Result, Path], tmp_path: Path) -> None:
    previous, _ = fitted
    assert previous.checkpoint is not None
    trainer = _trainer(tmp_path, "local", {"epochs": EPOCHS + 2}, workers=0,
                       resume_from_checkpoint=previous.checkpoint)
    result = trainer.fit()
    df = result.metrics_dataframe
    assert set(df["pid"]) == {os.getpid()}
    assert not df["is_ddp"].any()  # prepare_model is a no-op for one process
    assert list(df["epoch"]) == [EPOCHS, EPOCHS + 1]
    assert (df["rows"] == ROWS).all()  # the whole dataset, unsplit
    assert df["loss"].iloc[0] < 0.1


def test_prepare_data_loader_shards_and_reshuffles_each_epoch(ray_session: None,
                                                             tmp_path: Path) -> None:
    trainer = TorchTrainer(torch_loops.data_loader_loop,
                           train_loop_config={"rows": 64, "out_dir": str(tmp_path)},
                           scaling_config=ScalingConfig(num_workers=2),
                           run_config=RunConfig(storage_path=str(tmp_path)))
    assert trainer.fit().metrics["batches"] == 4  # 32 rows per worker, batches of 8
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for epoch in range(2):
        assert not set(seen[0][epoch]) & set(seen[1][epoch])
        assert set(seen[0][epoch]) | set(seen[1][epoch]) == set(range(64))
    assert seen[0][0] != seen[0][1]  # set_epoch advanced: a new order each pass
