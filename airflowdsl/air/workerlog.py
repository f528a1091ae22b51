"""Where the output of a step's training workers goes, on whichever node they run.

A step's task binds its log (``bind``, by the runtime) for the step's duration; the
trainers it starts hand it to their worker processes (``current`` -> ``attach``):

- local store (the log file is on a disk every node sees): a worker appends its
  stdout/stderr to the step's own log file, as the step does;
- URI store: the step's log is spooled on the step's node and uploaded into
  ``<store>/runs/<run>/logs/`` when the step ends. A worker on that node appends to
  it; a worker on another node writes ``<step>@<node>-<pid>.log`` in its own node's
  temp folder and uploads it there when its training loop ends (``upload``), so
  ``airflowdsl logs RUN STEP`` shows what it printed from any machine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class StepLog:
    """The log of the step running in this process, as its workers need it."""

    run_id: str
    step: str
    path: str  # the step's log file
    #: the node whose disk holds ``path`` (None: a disk every node sees)
    node: str | None = None
    #: moves a local log file into the run's logs in the store (None: nothing to move)
    upload: Callable[[str], None] | None = None


_bound: StepLog | None = None


@contextlib.contextmanager
def bound(log: StepLog | None) -> Iterator[None]:
    """``log`` is the current step's log for the block (the runtime, around a step)."""
    global _bound
    previous, _bound = _bound, log
    try:
        yield
    finally:
        _bound = previous


def current() -> StepLog | None:
    """The log of the step this process runs (None outside a pipeline step)."""
    return _bound


def spool_dir(run_id: str) -> str:
    """Where a run on a URI store writes its logs first, on each node: a folder in the
    node's temp folder, emptied as the logs are uploaded."""
    return os.path.join(tempfile.gettempdir(), "airflowdsl-logs", run_id)


@dataclass(frozen=True)
class WorkerLog:
    """A worker's own log file on another node than its step's, and how to upload it."""

    path: str
    upload: Callable[[str], None]


def attach(log: StepLog | None) -> WorkerLog | None:
    """Send this worker process's stdout/stderr to its step's log for the process's life
    (module docstring). Returns the file to ``upload`` at the end, or None."""
    if log is None:
        return None
    if log.node is None or log.upload is None or log.node == _node_id():
        _append_output_to(log.path)
        return None
    own = os.path.join(spool_dir(log.run_id), f"{log.step}@{_node_id()[:8]}-{os.getpid()}.log")
    try:
        os.makedirs(os.path.dirname(own), exist_ok=True)
    except OSError:
        return None
    return WorkerLog(own, log.upload) if _append_output_to(own) else None


def upload(log: WorkerLog | None) -> None:
    """Move ``attach``'s file into the run's logs (what was printed so far); never raises."""
    if log is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(Exception):
        log.upload(log.path)


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def _append_output_to(path: str) -> bool:
    """Send this process's stdout/stderr (file descriptors 1 and 2) to ``path``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:  # not writable here: keep Ray's own log (streamed to the driver)
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return True


__all__ = ["StepLog", "WorkerLog", "attach", "bound", "current", "spool_dir", "upload"]
