"""Trainer storage inside a pipeline step is scoped per cache key (a cache-miss rerun with
``RunConfig(name=...)`` must not adopt the checkpoints of another key) and collected by
``airflowdsl cache gc``. Without Ray: the fit's state is built as ``run_fit`` builds it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflowdsl.air import progress
from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import RunConfig
from airflowdsl.runtime.gc import collect
from airflowdsl.runtime.store import ArtifactStore
from airflowdsl.train.fit import _FitState

KEY_A, KEY_B = "a" * 40, "b" * 40


@pytest.fixture()
def in_step() -> Iterator[None]:
    previous = progress.bind(progress.StepContext("run-1", "fit"))
    yield
    progress.bind(previous)


def _trainer(storage: Path) -> Any:
    return SimpleNamespace(run_config=RunConfig(name="gbdt", storage_path=str(storage)),
                           resume_from_checkpoint=None)


def _report(state: _FitState, iteration: int) -> None:
    path = os.path.join(state.run_dir, f"checkpoint_{iteration:06d}")
    os.makedirs(path)
    Path(path, "model.json").write_text(f'{{"rounds": {iteration}}}')
    state.on_report({"metrics": {"loss": 1.0 / iteration}, "training_iteration": iteration,
                     "checkpoint_path": path})


def test_a_cache_miss_does_not_adopt_another_keys_checkpoints(tmp_path: Path,
                                                              in_step: None) -> None:
    """The bug: key A trained 10 rounds under RunConfig(name="gbdt"); a rerun under key B
    (new params) adopted A's checkpoint at round 10, boosted 0 more rounds and stored A's
    model under B. Now B starts from nothing; a rerun of A itself still resumes."""
    progress.scope(KEY_A, reuse=True, store=str(tmp_path / "store"))
    first = _FitState(_trainer(tmp_path / "train"))
    _report(first, 10)
    assert first.run_dir == str(tmp_path / "train" / "gbdt" / f"key-{KEY_A[:16]}")

    progress.scope(KEY_B, reuse=True, store=str(tmp_path / "store"))
    other = _FitState(_trainer(tmp_path / "train"))
    assert other.resume is None and other.iteration == 0  # fresh: not A's round 10

    progress.scope(KEY_A, reuse=True, store=str(tmp_path / "store"))
    again = _FitState(_trainer(tmp_path / "train"))  # A failed midway: resume A
    assert again.resume is not None and again.iteration == 10


def test_forced_or_uncached_runs_get_a_private_folder(tmp_path: Path, in_step: None) -> None:
    progress.scope(KEY_A, reuse=True)
    _report(_FitState(_trainer(tmp_path)), 10)
    progress.scope(KEY_A, reuse=False)  # --no-cache / cache=False: recompute, adopt nothing
    forced = _FitState(_trainer(tmp_path))
    assert forced.resume is None and forced.iteration == 0
    assert os.path.basename(forced.run_dir) == "run-run-1-fit"


def test_outside_a_step_the_named_folder_is_shared_as_before(tmp_path: Path) -> None:
    assert progress.current() is None
    state = _FitState(_trainer(tmp_path))
    assert state.run_dir == str(tmp_path / "gbdt")
    _report(state, 3)
    assert _FitState(_trainer(tmp_path)).iteration == 3  # RunConfig(name=...) resumes


def _stored(st: ArtifactStore, key: str, value: Any) -> None:
    st.write(key, (value,), pipeline="p", step="fit")


def test_gc_collects_trainer_folders_of_stored_keys(tmp_path: Path, in_step: None) -> None:
    st = ArtifactStore.open(tmp_path / "store")
    storage = Path(st.base) / "train"  # the default place for a step's trainers
    folders = {}
    for key, reuse in ((KEY_A, True), (KEY_B, True), ("c" * 40, True), ("d" * 40, False)):
        progress.scope(key, reuse=reuse, store=st.root)
        state = _FitState(_trainer(storage))
        _report(state, 1)
        folders[key[0]] = Path(state.run_dir)
    _stored(st, KEY_A, Checkpoint.from_dict({"m": 1}))  # result copied into the store
    _stored(st, KEY_B, {"weights": object()})  # a pickle: may be a Result pointing here
    later = time.time() + 7200
    report = collect(st, grace_s=3600, now=later, dry_run=True)
    assert sorted(report.trainer) == sorted(str(folders[k]) for k in "ad")
    collect(st, grace_s=3600, now=later)
    assert not folders["a"].exists() and not folders["d"].exists()  # stored / run-private
    assert folders["b"].exists()  # its stored pickle may point into it
    assert folders["c"].exists()  # never stored: what a rerun of c resumes from
    collect(st, grace_s=3600, now=time.time() + 8 * 24 * 3600)
    assert not folders["c"].exists() and folders["b"].exists()  # stale after a week
    assert collect(st, grace_s=3600).trainer == []  # within the grace period: kept


def test_gc_leaves_other_folders_and_other_stores_alone(tmp_path: Path, in_step: None) -> None:
    st = ArtifactStore.open(tmp_path / "store")
    storage = Path(st.base) / "train"
    progress.scope(KEY_A, reuse=False, store=str(tmp_path / "elsewhere"))
    theirs = Path(_FitState(_trainer(storage)).run_dir)
    mine = storage / "gbdt" / "key-0123"  # no marker: not written by a step
    mine.mkdir(parents=True)
    assert collect(st, grace_s=0, now=time.time() + 10).trainer == []
    assert theirs.exists() and mine.exists()
