"""``airflowdsl logs RUN_ID [STEP]``: a run's output, as its steps and Ray workers wrote it."""

from __future__ import annotations

from typing import Annotated

import typer

from airflowdsl.cli._load import fail
from airflowdsl.cli.run import Store


def logs(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix)")],
         step: Annotated[str | None, typer.Argument(help="Only this step's log")] = None,
         store: Store = None) -> None:
    """Print a run's logs: each step's own output (with its workers' output from other
    nodes), then what other Ray workers printed. Local and URI stores alike."""
    from airflowdsl.runtime.history import History
    from airflowdsl.runtime.runlog import log_folder, log_names, read_log
    from airflowdsl.runtime.store import ArtifactStore, default_root

    root = default_root(store)
    record = History.for_root(root).run(run_id)
    if record is None:
        fail(f"no run {run_id!r} (see `airflowdsl runs`)")
    run = record["id"]
    st = ArtifactStore.open(record["store"] or root)
    names = log_names(st, run, step)
    if step is not None and not names:
        steps = sorted({n[:-4].split("@", 1)[0] for n in log_names(st, run)} - {"ray"})
        fail(f"run {run} has no log of step {step!r} (logs: {', '.join(steps) or 'none'})")
    if not names:
        fail(f"run {run} has no logs (no step ran)")
    folder = log_folder(st, run)
    for name in names:
        typer.echo(f"==> {folder}/{name} <==")
        typer.echo(read_log(st, run, name), nl=False)


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)


__all__ = ["logs", "register"]
