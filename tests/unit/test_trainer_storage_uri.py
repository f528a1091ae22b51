"""Trainer checkpoints in a storage URI (issue 12), without Ray: the reporting rank uploads
them complete (marker written last), readers take only complete ones, a fit resumes
from the latest complete one, and inside a step the default storage is the run store's
``train`` folder. The S3 cases run against a real S3 API (moto, in this process)."""

from __future__ import annotations

import gc
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflowdsl.air import progress, remote
from airflowdsl.air import session as air_session
from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import CheckpointConfig, RunConfig
from airflowdsl.air.storage import options_for
from airflowdsl.errors import TrainingFailedError
from airflowdsl.train.checkpoints import CheckpointManager
from airflowdsl.train.trainer import DataParallelTrainer
from tests.moto_s3 import S3Server, moto_s3


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3() as server:
        yield server


def _step(store: str | None, options: tuple[tuple[str, str], ...] = ()) -> Any:
    ctx = progress.StepContext("run-1", "fit", store=store, store_options=options,
                               cache_key="c" * 40, reuse=True)
    return progress.bind(ctx)


def test_default_storage_is_the_run_store_inside_a_step(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOWDSL_HOME", str(tmp_path / "home"))
    assert RunConfig().resolved_storage_path() == str(tmp_path / "home" / "train")
    previous = _step("s3://bucket/pipelines/x", (("endpoint_override", "http://h:1"),))
    try:
        assert RunConfig().resolved_storage_path() == "s3://bucket/pipelines/x/train"
        # the step's store options open storage under the store, and only there
        assert options_for("s3://bucket/pipelines/x/train/a") == (("endpoint_override",
                                                                    "http://h:1"),)
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere:2")  # else: this process's
        assert ("endpoint_override", "http://elsewhere:2") in options_for("s3://bucket/pipelines/xy")
        assert RunConfig(storage_path="s3://other/p/").resolved_storage_path() == "s3://other/p"
        assert RunConfig(storage_path=str(tmp_path / "mine")).resolved_storage_path() == str(
            tmp_path / "mine")
        progress.bind(progress.StepContext("run-1", "fit", store=str(tmp_path / "store")))
        assert RunConfig().resolved_storage_path() == str(tmp_path / "store" / "train")
        progress.bind(progress.StepContext("run-1", "fit"))  # persistence off: as outside
        assert RunConfig().resolved_storage_path() == str(tmp_path / "home" / "train")
    finally:
        progress.bind(previous)


def test_upload_is_complete_or_not_taken(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.bin").write_bytes(b"x" * 1000)
    (src / "sub" / "opt.bin").write_bytes(b"y" * 10)
    uri = f"file://{tmp_path}/store/checkpoint_000001"
    remote.upload(str(src), uri, ())
    assert remote.complete_files(uri, ()) == {"model.bin": 1000, "sub/opt.bin": 10}
    got = remote.download(uri, str(tmp_path / "got"), ())
    assert (Path(got) / "sub" / "opt.bin").read_bytes() == b"y" * 10
    assert not (Path(got) / remote.COMPLETE_MARKER).exists()

    dest = tmp_path / "store" / "checkpoint_000001"
    (dest / "model.bin").write_bytes(b"x" * 999)  # damaged after the upload
    assert remote.complete_files(uri, ()) is None
    with pytest.raises(TrainingFailedError, match="not complete"):
        remote.download(uri, str(tmp_path / "again"), ())
    remote.upload(str(src), uri, ())  # replaced whole
    (dest / remote.COMPLETE_MARKER).unlink()  # an upload killed before its marker
    assert remote.complete_files(uri, ()) is None
    with pytest.raises(TrainingFailedError, match="no data"):
        remote.upload(str(tmp_path / "empty_does_not_exist"), uri, ())


def test_rank_zero_uploads_to_s3_and_drops_its_scratch_copy(s3: S3Server) -> None:
    run_dir = s3.uri("train/fit/key-1")
    records: list[dict[str, Any]] = []
    sess = air_session.WorkerSession(world_rank=0, world_size=1, local_rank=0,
                                     local_world_size=1, node_rank=0, run_dir=run_dir,
                                     sink=records.append, storage_options=options_for(run_dir))
    ckpt = Checkpoint.from_dict({"epoch": 3, "w": list(range(100))})
    sess.report({"loss": 0.5}, checkpoint=ckpt)
    assert not os.path.exists(ckpt.path)  # the worker's scratch copy is gone
    uri = records[0]["checkpoint_path"]
    assert uri == f"{run_dir}/checkpoint_000001"
    keys = s3.keys("train/fit/key-1/checkpoint_000001/")
    assert any(k.endswith(remote.COMPLETE_MARKER) for k in keys)
    stored = Checkpoint(uri)
    assert stored.get_metadata()["training_iteration"] == 1
    assert stored.to_dict() == {"epoch": 3, "w": list(range(100))}
    mine = tempfile.mkdtemp(prefix="user-dir-")  # a folder the user made stays
    Path(mine, "f.txt").write_text("kept")
    sess.report({"loss": 0.4}, checkpoint=Checkpoint.from_directory(mine))
    assert os.path.exists(mine)
    assert Checkpoint(records[1]["checkpoint_path"]).to_dict() == {"f.txt": b"kept"}

    # the manager records complete ones only, lists them, and prunes in the bucket
    manager = CheckpointManager(run_dir, CheckpointConfig(num_to_keep=1),
                                storage_options=options_for(run_dir))
    assert [i for i, _ in manager.existing()] == [1, 2]
    remote.delete_file(f"{run_dir}/checkpoint_000002", remote.COMPLETE_MARKER,
                       options_for(run_dir))
    assert [i for i, _ in manager.existing()] == [1]
    with pytest.raises(TrainingFailedError, match="not complete"):
        manager.register(Checkpoint(f"{run_dir}/checkpoint_000002"), {})
    manager.register(Checkpoint(f"{run_dir}/checkpoint_000001"), {"loss": 0.5})
    sess.report({"loss": 0.3}, checkpoint=Checkpoint.from_dict({"epoch": 5}))
    manager.register(Checkpoint(records[2]["checkpoint_path"]), {"loss": 0.3})
    assert not s3.keys("train/fit/key-1/checkpoint_000001/")  # pruned: num_to_keep=1
    assert manager.best() == Checkpoint(f"{run_dir}/checkpoint_000003")


def test_a_uri_checkpoint_travels_without_its_download(s3: S3Server, tmp_path: Path) -> None:
    src = tmp_path / "c"
    src.mkdir()
    (src / "model.txt").write_text("weights")
    uri = s3.uri("loose/checkpoint_000001")
    remote.upload(str(src), uri, options_for(uri))
    ckpt = Checkpoint(uri)
    local = ckpt.path  # downloaded once, complete
    assert Path(local, "model.txt").read_text() == "weights"
    moved = pickle.loads(pickle.dumps(ckpt))
    assert moved.uri == uri and moved._local is None and moved == ckpt
    with moved.as_directory() as there:
        assert Path(there, "model.txt").read_text() == "weights"
    assert not os.path.exists(there)  # the temp copy of as_directory is removed
    del ckpt, moved  # the download of .path goes with its last checkpoint object
    gc.collect()
    assert not os.path.exists(local)
    legacy = Checkpoint.__new__(Checkpoint)  # a checkpoint pickled before URI checkpoints
    legacy.__setstate__({"path": str(src)})
    assert legacy.path == str(src) and legacy.uri is None


def _resuming_loop(config: dict[str, Any]) -> None:
    start = air_session.get_checkpoint()
    first = start.to_dict()["epoch"] + 1 if start is not None else 0
    for epoch in range(first, config["epochs"]):
        air_session.report({"epoch": epoch, "first": first},
                           checkpoint=Checkpoint.from_dict({"epoch": epoch}))


def test_a_fit_in_a_step_stores_in_the_bucket_and_resumes_from_it(s3: S3Server) -> None:
    store = s3.uri("pipelines/p")
    previous = _step(store, options_for(store))
    try:
        def fit(epochs: int) -> Any:
            return DataParallelTrainer(
                _resuming_loop, train_loop_config={"epochs": epochs},
                scaling_config={"num_workers": 0}, run_config=RunConfig(name="loop")).fit()

        first = fit(2)
        assert first.checkpoint is not None and first.checkpoint.uri is not None
        assert first.checkpoint.uri.startswith(f"{store}/train/loop/key-")
        assert first.metrics["first"] == 0
        second = fit(4)  # the same key again (a step killed midway): resumes from the bucket
        assert second.metrics["first"] == 2 and second.metrics["epoch"] == 3
        assert second.checkpoint is not None and second.checkpoint.to_dict() == {"epoch": 3}
    finally:
        progress.bind(previous)
    names = {k.split("/")[-2] for k in s3.keys("pipelines/p/train/loop/")
             if k.endswith(remote.COMPLETE_MARKER)}
    assert names == {f"checkpoint_{i:06d}" for i in range(1, 5)}


def test_a_step_output_on_a_uri_is_not_downloaded_to_be_kept(tmp_path: Path) -> None:
    from airflowdsl.runtime.serializers import PrivateCopies

    copies = PrivateCopies()
    copies.keep((Checkpoint(f"file://{tmp_path}/nowhere/checkpoint_000001"), 3))
    assert copies.kept == set()  # reading .path would have tried a download (and failed)
