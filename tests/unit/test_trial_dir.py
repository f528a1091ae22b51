"""``session.get_trial_dir()`` with a URI storage (issue 12): a local folder of the worker's
own, removed when its loop ends (done or failed), in local mode and in a training worker.
No Ray: the worker class runs its loop thread in this process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflowdsl.air import session as air_session
from airflowdsl.air.config import RunConfig
from airflowdsl.errors import TrainingFailedError
from airflowdsl.train import worker_group
from airflowdsl.train.trainer import DataParallelTrainer


def _loop_writing_to_trial_dir(seen: list[str], fail: bool) -> Any:
    def loop() -> None:
        folder = air_session.get_trial_dir()
        assert folder == air_session.get_trial_dir()  # one folder for the whole loop
        Path(folder, "notes.txt").write_text("scratch")
        seen.append(folder)
        air_session.report({"ok": 1})
        if fail:
            raise ValueError("loop failed on purpose")
    return loop


@pytest.mark.parametrize("fail", [False, True])
def test_local_fit_removes_the_trial_dir_of_a_uri_storage(tmp_path: Path, fail: bool) -> None:
    seen: list[str] = []
    trainer = DataParallelTrainer(
        _loop_writing_to_trial_dir(seen, fail), scaling_config={"num_workers": 0},
        run_config=RunConfig(name="t", storage_path=f"file://{tmp_path}/store"))
    if fail:
        with pytest.raises((TrainingFailedError, ValueError)):
            trainer.fit()
    else:
        trainer.fit()
    assert len(seen) == 1 and not seen[0].startswith(str(tmp_path))  # local, not the storage
    assert not os.path.exists(seen[0])  # removed when the fit's loop ended


def test_a_local_storage_trial_dir_is_the_run_dir(tmp_path: Path) -> None:
    sess = air_session.WorkerSession(0, 1, 0, 1, 0, run_dir=str(tmp_path / "run"))
    with air_session.installed(sess):
        assert air_session.get_trial_dir() == str(tmp_path / "run")
    assert tmp_path.exists() and sess.local_trial_dir is None  # the user's folder is kept


@pytest.mark.parametrize("fail", [False, True])
def test_a_training_worker_removes_its_trial_dir(tmp_path: Path, fail: bool) -> None:
    seen: list[str] = []
    worker = worker_group._TrainWorker({})
    ctx = {"world_rank": 0, "world_size": 1, "local_rank": 0, "local_world_size": 1,
           "node_rank": 0, "run_dir": "s3://no-such-bucket/store/t"}  # never opened
    worker.start(_loop_writing_to_trial_dir(seen, fail), None, ctx)
    reports: list[dict[str, Any]] = []
    while not any("done" in r or "error" in r for r in reports):
        got = worker.poll(timeout=30)
        assert got, "the worker's loop sent nothing for 30 s"
        reports += got
    assert ("error" in reports[-1]) == fail
    assert len(seen) == 1 and not os.path.exists(seen[0])
