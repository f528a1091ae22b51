"""``airflowdsl run`` (with a live step display) and ``airflowdsl explain``.

Exit codes: 0 succeeded, 1 the run failed (the step's own traceback and its log path
are shown; also a step asking for more than the cluster has), 2 bad input (file,
pipeline, ``-p`` value, step name), 130 cancelled with Ctrl-C.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from airflowdsl.air.resources import DEFAULT_PENDING_TIMEOUT_S
from airflowdsl.cli._load import cli_errors, compile_target, fail

STYLE = {"pending": "dim", "running": "yellow", "cached": "cyan", "succeeded": "green",
         "failed": "bold red", "skipped": "dim", "cancelled": "magenta"}

Target = Annotated[str, typer.Argument(help="FILE.py[:PIPELINE]", metavar="FILE[:PIPELINE]")]
Params = Annotated[list[str] | None, typer.Option("-p", "--param", help="Pipeline parameter NAME=VALUE")]
Store = Annotated[str | None, typer.Option(
    "--store", help="Store root: a path or a URI (s3://bucket/prefix, gs://..., file:// for a "
    "mount all nodes share; default $AIRFLOWDSL_STORE, $AIRFLOWDSL_HOME or ./.airflowdsl)")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Rerun every step")]
From = Annotated[str | None, typer.Option("--from", help="Rerun this step and everything downstream")]
Only = Annotated[list[str] | None, typer.Option("--only", help="Run just these steps (+ needed upstream)")]


Verbose = Annotated[bool, typer.Option("-v", "--verbose",
                                        help="Also show Ray workers' output live")]
PendingTimeout = Annotated[float, typer.Option(
    "--pending-timeout", metavar="SECONDS",
    help="Fail a step whose Ray work waits this long for resources with no progress "
         "(0: no limit)")]
Wait = Annotated[bool, typer.Option("--wait", help="Wait for resources without limit "
                                                   "(same as --pending-timeout 0)")]


class _Board:
    """The live table: one row per step, re-rendered on every refresh (elapsed times move)."""

    def __init__(self) -> None:
        self.states: dict[str, Any] = {}

    def __rich__(self) -> Table:
        t = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for col in ("step", "kind", "status", "time", "progress"):
            t.add_column(col, overflow="fold")
        now = time.time()
        for name, s in self.states.items():
            status = s.display_status
            dur = s.duration_s if s.duration_s is not None else (
                now - s.started if status == "running" and s.started else None)
            t.add_row(name, s.kind, f"[{STYLE.get(status, '')}]{status}[/]",
                      f"{dur:.1f}s" if dur is not None else "",
                      s.progress if status == "running" else "", )
        return t


def run(target: Target, param: Params = None, no_cache: NoCache = False, from_step: From = None,
        only: Only = None, store: Store = None, verbose: Verbose = False,
        pending_timeout: PendingTimeout = DEFAULT_PENDING_TIMEOUT_S, wait: Wait = False) -> None:
    """Run a pipeline on Ray; cached steps are reused. Ctrl-C cancels (exit 130)."""
    from airflowdsl.errors import ResourceError
    from airflowdsl.runtime.executor import execute
    from airflowdsl.runtime.history import new_run_id

    # the live table is the progress display: keep Ray Data's bars out of it
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    with cli_errors():
        compiled = compile_target(target, param)
    for name in [from_step, *(only or [])]:
        if name is not None and name not in compiled.graph:
            fail(f"no step {name!r} in pipeline {compiled.name!r} (steps: {', '.join(compiled.order)})")
    console = Console(stderr=True)
    board = _Board()
    limit = None if wait or pending_timeout <= 0 else pending_timeout
    with Live(board, console=console, refresh_per_second=4, transient=False) as live:
        def on_event(run_id: str, name: str, step: Any) -> None:
            board.states[name] = step
            live.refresh()

        try:
            result = execute(compiled, store=store, force=no_cache, from_step=from_step,
                             only=only, on_event=on_event, run_id=new_run_id(),
                             pending_timeout=limit, echo_worker_output=verbose)
        except ResourceError as err:
            live.stop()
            console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(1) from None
    console.line()
    _summary(result, compiled, console, target)
    if result.status == "cancelled":
        raise typer.Exit(130)
    if result.status != "succeeded":
        raise typer.Exit(1)


def _summary(result: Any, compiled: Any, console: Console, target: str) -> None:
    out = Console()
    ran = len(result.executed_steps)
    cached = len(result.cached_steps)
    colour = "green" if result.succeeded else "red"
    out.print(f"run [bold]{result.id}[/] [{colour}]{result.status}[/] in {result.duration_s:.2f}s "
              f"({ran} ran, {cached} cached)")
    for step, metrics in result.metrics.items():
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        out.print(f"  metrics {step}: {shown}")
    from airflowdsl.runtime.planner import output_nodes

    for node in sorted(output_nodes(compiled.outputs)):
        for path in result.steps[node].artifacts:
            out.print(f"  output {node}: {path}", soft_wrap=True)
    graph = _render_graph(result, compiled)
    if graph:
        out.print(f"  graph: {graph}", soft_wrap=True)
    flag = _store_flag(result.store)
    out.print(f"  details: airflowdsl show {result.id}{flag}   logs: airflowdsl logs "
              f"{result.id}{flag}", soft_wrap=True)
    if result.status == "cancelled":
        console.print(f"[yellow]cancelled[/]: finished steps are stored; resume with "
                      f"`airflowdsl run {target}` (the same -p values): it reruns only "
                      f"what did not finish", highlight=False, soft_wrap=True)
    elif not result.succeeded:
        console.print(f"[bold red]error:[/] {result.error}", highlight=False)
        if result.traceback:
            console.print(result.traceback, highlight=False, markup=False)
        from airflowdsl.runtime.runlog import run_log_dir

        logs = run_log_dir(result.store, result.id)
        for name, s in result.steps.items():
            if s.status == "failed" and logs:
                console.print(f"  log of {name}: {os.path.join(logs, name + '.log')}",
                              highlight=False, soft_wrap=True)


def _render_graph(result: Any, compiled: Any) -> str | None:
    """Draw the DAG coloured by this run into ``<store>/runs/<id>/`` (local stores)."""
    if "://" in result.store:
        return None
    root = Path(result.store)
    status = {n: s.display_status for n, s in result.steps.items()}
    for suffix in (".svg", ".mmd"):
        try:
            return str(compiled.render(root / "runs" / result.id / f"dag{suffix}", status=status))
        except Exception:  # noqa: BLE001 - graphviz missing: fall back to Mermaid
            continue
    return None


def _store_flag(store: str) -> str:
    from airflowdsl.runtime.store import default_root

    return "" if store == default_root(None) else f" --store {store}"


def explain(target: Target, param: Params = None, store: Store = None, no_cache: NoCache = False,
            from_step: From = None) -> None:
    """For each step: will the next run hit the cache, and if not, why."""
    from airflowdsl.runtime.explain import explain as _explain

    with cli_errors():
        compiled = compile_target(target, param)
        if from_step is not None and from_step not in compiled.graph:
            fail(f"no step {from_step!r} in pipeline {compiled.name!r}")
    rows = _explain(compiled, store=store, force=no_cache, from_step=from_step)
    t = Table(title=f"{compiled.name}: next run", box=None, header_style="bold")
    last = any(e.last_run for e in rows)
    for col in ("step", "cache", "why", *(("last run",) if last else ())):
        t.add_column(col)
    for e in rows:
        verdict = "[cyan]hit[/]" if e.hit else "[yellow]run[/]"
        t.add_row(e.step, verdict, "; ".join(e.reasons), *((e.last_run,) if last else ()))
    Console().print(t)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("explain")(explain)


__all__ = ["explain", "register", "run"]
