"""Where a run's output goes: one log file per step, plus ``ray.log`` for the rest.

A step task sends its own stdout/stderr to ``<root>/runs/<run>/logs/<step>.log``
(``tasks.step_context``), and so do the training workers it starts. On a remote store
the logs are written to a local temp folder (``spool_dir``) of the node and moved into
``<store>/runs/<run>/logs/`` when the step ends (``upload_logs``), the driver's
``ray.log`` when the run ends. Everything else Ray
streams to the driver while the run lasts (Ray Data tasks, Tune trials, other actors)
is appended to ``ray.log`` beside them by :func:`capture_worker_output`, and printed
on the driver's terminal only when ``echo`` is on (``airflowdsl run -v``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def run_log_dir(root: str, run_id: str) -> str | None:
    """``<root>/runs/<run_id>/logs`` for a local store (None for an object store)."""
    if "://" in root and not root.startswith("file://"):
        return None
    return os.path.join(root.removeprefix("file://"), "runs", run_id, "logs")


def spool_dir(run_id: str) -> str:
    """Where a run on a remote store writes its logs first, on each node (a local temp
    folder; ``upload_logs`` moves them into the store)."""
    return os.path.join(tempfile.gettempdir(), "airflowdsl-logs", run_id)


def upload_logs(store: Any, run_id: str, paths: list[str]) -> None:
    """Move the log files ``paths`` (local) into ``<store>/runs/<run_id>/logs/`` (one object
    each, replacing an earlier one) and remove them and their folders once empty. A
    failed upload is left for the next call (the run's end) and never fails a step."""
    from airflowdsl.runtime import fsutil

    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            fsutil.write_bytes(store.fs, f"{store.base}/runs/{run_id}/logs/"
                               f"{os.path.basename(path)}", data)
            os.unlink(path)
        except OSError:
            continue
    for folder in {os.path.dirname(p) for p in paths}:
        for d in (folder, os.path.dirname(folder)):
            try:
                os.rmdir(d)
            except OSError:
                break


def read_logs(store: Any, run_id: str) -> dict[str, str]:
    """Log name -> text of a run whose logs are in a remote store."""
    import pyarrow.fs as pafs

    from airflowdsl.runtime import fsutil

    folder = f"{store.base}/runs/{run_id}/logs"
    infos = store.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return {i.base_name: fsutil.read_bytes(store.fs, i.path).decode("utf-8", "replace")
            for i in infos if i.base_name.endswith(".log")}


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


__all__ = ["capture_worker_output", "read_logs", "run_log_dir", "spool_dir", "upload_logs"]
