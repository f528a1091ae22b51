"""``airflowdsl logs RUN_ID [STEP]``: a run's output, as its steps and Ray workers wrote it."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from airflowdsl.cli._load import fail
from airflowdsl.cli.run import Store


def logs(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix)")],
         step: Annotated[str | None, typer.Argument(help="Only this step's log")] = None,
         store: Store = None) -> None:
    """Print a run's logs: each step's own output, then what other Ray workers printed."""
    from airflowdsl.runtime.history import History
    from airflowdsl.runtime.runlog import run_log_dir
    from airflowdsl.runtime.store import ArtifactStore, default_root

    root = default_root(store)
    record = History.for_root(root).run(run_id)
    if record is None:
        fail(f"no run {run_id!r} (see `airflowdsl runs`)")
    folder = run_log_dir(record["store"] or root, record["id"])
    if folder is None:  # a remote store: the logs are objects in it
        _print_remote(ArtifactStore.open(record["store"] or root), record["id"], step)
        return
    if not os.path.isdir(folder):
        fail(f"run {record['id']} has no logs (no step ran, or its store is not local)")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".log"))
    if step is not None:
        names = [f"{step}.log"]
        if not os.path.isfile(os.path.join(folder, names[0])):
            steps = ", ".join(n[:-4] for n in sorted(os.listdir(folder)) if n != "ray.log")
            fail(f"run {record['id']} has no log of step {step!r} (logs: {steps or 'none'})")
    else:  # the steps' own logs first, Ray's other workers last
        names.sort(key=lambda n: n == "ray.log")
    for name in names:
        typer.echo(f"==> {os.path.join(folder, name)} <==")
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
            typer.echo(f.read(), nl=False)


def _print_remote(store: Any, run_id: str, step: str | None) -> None:
    from airflowdsl.runtime.runlog import read_logs

    logs = read_logs(store, run_id)
    if step is not None:
        if f"{step}.log" not in logs:
            steps = ", ".join(n[:-4] for n in sorted(logs) if n != "ray.log")
            fail(f"run {run_id} has no log of step {step!r} (logs: {steps or 'none'})")
        logs = {f"{step}.log": logs[f"{step}.log"]}
    elif not logs:
        fail(f"run {run_id} has no logs (no step ran)")
    for name in sorted(logs, key=lambda n: (n == "ray.log", n)):
        typer.echo(f"==> {store.root}/runs/{run_id}/logs/{name} <==")
        typer.echo(logs[name], nl=False)


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)


__all__ = ["logs", "register"]
