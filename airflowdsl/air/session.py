"""The per-worker session: what ``train_loop_per_worker`` talks to.

A training worker (or the calling process in local mode) installs a ``WorkerSession``;
the module-level functions below are the AIR ``session`` API on top of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflowdsl.air.checkpoint import Checkpoint, persist_directory, upload
from airflowdsl.air.scratch import Owned
from airflowdsl.air.shard import DatasetShard
from airflowdsl.air.storage import Options, is_uri, join

_OUTSIDE = (
    "airflowdsl.air.session.{name}() was called outside a training worker: call it from "
    "the train_loop_per_worker a Trainer runs (use ScalingConfig(num_workers=0) to run the "
    "loop in this process)"
)


@dataclass
class WorkerSession:
    """Everything one worker knows about its fit."""

    world_rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    run_dir: str
    dataset_shards: dict[str, Any] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    trial_name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    start_iteration: int = 0
    sink: Callable[[dict[str, Any]], None] | None = None  # receives each report record
    iteration: int = 0
    started: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict)  # backend-specific (device, ...)
    #: how to open ``run_dir`` when it is a storage URI (``air.storage.options_for``)
    storage_options: Options = ()
    #: the local folder ``get_trial_dir`` made for a URI ``run_dir`` (``close`` removes it)
    local_trial_dir: Owned | None = None

    def trial_dir(self) -> str:
        """``run_dir``; where it is a storage URI, a local folder of this worker's own,
        made on first use and removed when the loop ends (``close``) or, if the process
        exits first, at exit (``air.scratch``): nothing in it is uploaded."""
        if not is_uri(self.run_dir):
            return self.run_dir
        if self.local_trial_dir is None:
            self.local_trial_dir = Owned(tempfile.mkdtemp(prefix="airflowdsl-trial-"))
        return self.local_trial_dir.path

    def close(self) -> None:
        """The loop ended: remove the local folder ``trial_dir`` made, if any."""
        owned, self.local_trial_dir = self.local_trial_dir, None
        if owned is not None:
            shutil.rmtree(owned.path, ignore_errors=True)

    def report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None = None) -> None:
        if not isinstance(metrics, dict):
            raise TypeError(f"session.report takes a dict of metrics, got {type(metrics).__name__}")
        self.iteration += 1
        iteration = self.start_iteration + self.iteration
        record: dict[str, Any] = {
            "rank": self.world_rank,
            "metrics": dict(metrics),
            "training_iteration": iteration,
            "time_total_s": time.time() - self.started,
            "checkpoint_path": None,
        }
        if checkpoint is not None and self.world_rank == 0:
            dest = join(self.run_dir, f"checkpoint_{iteration:06d}")
            if is_uri(dest):  # this rank uploads it, complete, then drops its scratch copy
                upload(checkpoint, dest, self.storage_options,
                       metadata={"training_iteration": iteration})
                discard_scratch(checkpoint)
                record["checkpoint_path"] = dest
            else:
                record["checkpoint_path"] = persist_directory(checkpoint.path, dest)
                Checkpoint(dest).update_metadata({"training_iteration": iteration})
        if self.sink is not None:
            self.sink(record)


_SESSION: WorkerSession | None = None


def install_session(session: WorkerSession | None) -> None:
    """Make ``session`` the one the module-level functions talk to (None: no session).

    Called by whoever runs a training loop: a worker actor, the local-mode fit, a Tune
    function trial. Prefer :func:`installed`, which restores the previous one.
    """
    global _SESSION
    _SESSION = session


@contextlib.contextmanager
def installed(session: WorkerSession | None) -> Iterator[WorkerSession | None]:
    """``with installed(sess): loop()`` -- ``sess`` is the session inside, the previous
    after; ``sess`` is closed (``WorkerSession.close``) when the block ends."""
    previous = _SESSION
    install_session(session)
    try:
        yield session
    finally:
        install_session(previous)
        if session is not None:
            session.close()


def _current(name: str) -> WorkerSession:
    if _SESSION is None:
        raise RuntimeError(_OUTSIDE.format(name=name))
    return _SESSION


def get_session() -> WorkerSession | None:
    """The active session, or None outside a training worker."""
    return _SESSION


def report(metrics: dict[str, Any], checkpoint: Checkpoint | None = None) -> None:
    """Report metrics (rank 0's are kept) and optionally a checkpoint (rank 0's is persisted)."""
    _current("report").report(metrics, checkpoint)


def get_dataset_shard(name: str = "train") -> Any:
    """This worker's part of ``datasets[name]``: a ``ray.data.DataIterator`` (wrapped in a
    :class:`~airflowdsl.air.shard.DatasetShard`, whose ``iter_torch_batches`` is faster)."""
    session = _current("get_dataset_shard")
    if name not in session.dataset_shards:
        known = ", ".join(sorted(session.dataset_shards)) or "none"
        raise KeyError(f"no dataset named {name!r} was passed to the trainer (datasets: {known})")
    shard = session.dataset_shards[name]
    if isinstance(shard, DatasetShard):
        return shard.with_device(torch_device)
    if hasattr(shard, "iter_torch_batches"):
        shard = session.dataset_shards[name] = DatasetShard(shard, device=torch_device)
    return shard


def torch_device() -> Any:
    """The device ``iter_torch_batches(device="auto")`` means: the worker's training device."""
    import torch

    session = get_session()
    extras = session.extras if session is not None else {}
    if "device" in extras:
        return torch.device(extras["device"])
    if extras.get("use_gpu") and torch.cuda.is_available():
        rank = session.local_rank if session is not None else 0
        return torch.device(f"cuda:{rank % torch.cuda.device_count()}")
    return torch.device("cpu")


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint to resume from (after a restart or ``resume_from_checkpoint``), else None."""
    return _current("get_checkpoint").checkpoint


def get_world_rank() -> int:
    return _current("get_world_rank").world_rank


def get_world_size() -> int:
    return _current("get_world_size").world_size


def get_local_rank() -> int:
    return _current("get_local_rank").local_rank


def get_local_world_size() -> int:
    return _current("get_local_world_size").local_world_size


def get_node_rank() -> int:
    return _current("get_node_rank").node_rank


def get_trial_name() -> str:
    return _current("get_trial_name").trial_name


def get_trial_dir() -> str:
    """The fit's folder; where its storage is a URI, a local folder of this worker's own
    that is removed when its loop ends (``WorkerSession.trial_dir``)."""
    return _current("get_trial_dir").trial_dir()


def scratch_dir() -> str:
    """A fresh local directory to write a checkpoint into before reporting it."""
    return tempfile.mkdtemp(prefix=_SCRATCH[1])


#: temp folders airflowdsl makes for a checkpoint before it is reported
#: (``Checkpoint.from_dict``, ``scratch_dir``, framework checkpoints' ``from_model``)
_SCRATCH = ("airflowdsl-ckpt-", "airflowdsl-scratch-", "airflowdsl-tf-")


def discard_scratch(checkpoint: Checkpoint) -> None:
    """Remove ``checkpoint``'s local folder once it is uploaded, if airflowdsl made it in
    the temp folder; a folder the user named is never removed."""
    if checkpoint.uri is not None:
        return
    folder = checkpoint.path
    if (os.path.dirname(folder) == os.path.abspath(tempfile.gettempdir())
            and os.path.basename(folder).startswith(_SCRATCH)):
        shutil.rmtree(folder, ignore_errors=True)


__all__ = [
    "WorkerSession",
    "get_checkpoint",
    "get_dataset_shard",
    "get_local_rank",
    "get_local_world_size",
    "get_node_rank",
    "get_session",
    "get_trial_dir",
    "get_trial_name",
    "get_world_rank",
    "get_world_size",
    "install_session",
    "discard_scratch",
    "installed",
    "report",
    "scratch_dir",
    "torch_device",
]
