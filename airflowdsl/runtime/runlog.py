"""Where a run's output goes: one log file per step, plus ``ray.log`` for the rest.

A step task sends its own stdout/stderr to ``<root>/runs/<run>/logs/<step>.log``
(``tasks.step_context``), and so do the training workers it starts. On a remote store
the logs are written to a local temp folder (``spool_dir``) of the node and moved into
``<store>/runs/<run>/logs/`` when the step ends (``upload_logs``), the driver's
``ray.log`` when the run ends; training workers on another node than their step write
``<step>@<node>-<pid>.log`` there and upload it when their loop ends (``air.workerlog``).
Everything else Ray streams to the driver while the run lasts (Ray Data tasks, Tune
trials, other actors) is appended to ``ray.log`` beside them by
:func:`capture_worker_output`, and printed on the driver's terminal only when ``echo``
is on (``airflowdsl run -v``). Local or URI store, ``log_names`` and ``read_log`` read
a run's logs (``airflowdsl logs``, ``airflowdsl ui``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from airflowdsl.air.workerlog import spool_dir


def run_log_dir(root: str, run_id: str) -> str | None:
    """``<root>/runs/<run_id>/logs`` for a local store (None for an object store)."""
    if "://" in root and not root.startswith("file://"):
        return None
    return os.path.join(root.removeprefix("file://"), "runs", run_id, "logs")


@dataclass(frozen=True)
class LogUpload:
    """Moves a log file of this node into the run's logs in a URI store (``upload_logs``):
    what a step's training workers on other nodes call (``air.workerlog``)."""

    store: Any  # ArtifactStore
    run_id: str

    def __call__(self, path: str) -> None:
        upload_logs(self.store, self.run_id, [path])


def upload_logs(store: Any, run_id: str, paths: list[str]) -> None:
    """Move the log files ``paths`` (local) into ``<store>/runs/<run_id>/logs/`` (one object
    each, replacing an earlier one) and remove them and their folders once empty. A
    failed upload is left for the next call (the run's end) and never fails a step."""
    from airflowdsl.runtime import fsutil

    folder = f"{store.base}/runs/{run_id}/logs"
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            if fsutil.is_local(store.fs):  # object stores have no directories
                os.makedirs(folder, exist_ok=True)
            fsutil.write_bytes(store.fs, f"{folder}/{os.path.basename(path)}", data)
            os.unlink(path)
        except OSError:
            continue
    for folder in {os.path.dirname(p) for p in paths}:
        for d in (folder, os.path.dirname(folder)):
            try:
                os.rmdir(d)
            except OSError:
                break


def log_folder(store: Any, run_id: str) -> str:
    """Where a run's logs are, for people: the local folder, or the URI of their prefix."""
    local = run_log_dir(store.root, run_id)
    return local if local is not None else f"{store.root.rstrip('/')}/runs/{run_id}/logs"


def log_names(store: Any, run_id: str, step: str | None = None) -> list[str]:
    """The log files of a run (``step``: of that step only), local store or URI store alike:
    each step's own log followed by its parts from other nodes (``<step>@<where>.log``,
    training workers of the step that ran elsewhere), ``ray.log`` last."""
    import pyarrow.fs as pafs

    folder = f"{store.base}/runs/{run_id}/logs"
    infos = store.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    names = [i.base_name for i in infos
             if i.type == pafs.FileType.File and i.base_name.endswith(".log")]
    if step is not None:
        names = [n for n in names if n == f"{step}.log" or n.startswith(f"{step}@")]
    return sorted(names, key=_log_order)


def _log_order(name: str) -> tuple[bool, str, bool, str]:
    step = name[:-4].split("@", 1)[0]
    return name == "ray.log", step, "@" in name, name


def read_log(store: Any, run_id: str, name: str) -> str:
    """The text of log file ``name`` of a run (``log_names``)."""
    from airflowdsl.runtime import fsutil

    data = fsutil.read_bytes(store.fs, f"{store.base}/runs/{run_id}/logs/{name}")
    return data.decode("utf-8", "replace")


def read_log_tail(store: Any, run_id: str, name: str, limit: int) -> tuple[str, bool]:
    """The last ``limit`` bytes of log file ``name`` of a run as text, and whether the log
    is longer (one ranged read on an object store: the UI's step panel)."""
    with store.fs.open_input_file(f"{store.base}/runs/{run_id}/logs/{name}") as f:
        end = f.size()
        f.seek(max(0, end - limit))
        data = f.read()
    return bytes(data).decode("utf-8", "replace"), end > limit


def read_logs(store: Any, run_id: str) -> dict[str, str]:
    """Log name -> text of every log of a run (``log_names`` order)."""
    return {name: read_log(store, run_id, name) for name in log_names(store, run_id)}


def _line_prefix(data: dict[str, Any]) -> str:
    who = data.get("task_name") or data.get("actor_name") or "worker"
    return f"({who} pid={data.get('pid')}) "


@contextmanager
def capture_worker_output(path: str | None, *, echo: bool) -> Iterator[None]:
    """Append the worker output Ray streams to this driver to ``path``; keep Ray's own
    printing only if ``echo``. Without Ray's log streaming, nothing to do."""
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatch
    except ImportError:  # pragma: no cover - another Ray layout
        yield
        return
    out = None
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        out = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115

    def write(data: dict[str, Any]) -> None:
        if out is None or out.closed:
            return
        prefix = _line_prefix(data)
        stamp = time.strftime("%H:%M:%S")
        out.writelines(f"{stamp} {prefix}{line}\n" for line in data.get("lines", []))
        out.flush()

    saved = list(dispatch.handlers)
    dispatch.add_handler("airflowdsl_run_log", write)
    if not echo:
        dispatch.remove_handler("ray_print_logs")
    try:
        yield
    finally:
        with dispatch._lock:
            dispatch.handlers = saved
        if out is not None:
            out.close()


__all__ = ["LogUpload", "capture_worker_output", "log_folder", "log_names", "read_log",
           "read_log_tail", "read_logs", "run_log_dir", "spool_dir", "upload_logs"]
