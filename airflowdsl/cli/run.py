"""``airflowdsl run`` (with a live step display) and ``airflowdsl explain``.

Exit codes: 0 succeeded, 1 the run failed (the step's own traceback is shown),
2 bad input (file, pipeline, ``-p`` value, step name).
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

from airflowdsl.cli._load import cli_errors, compile_target, fail

STYLE = {"pending": "dim", "running": "yellow", "cached": "cyan", "succeeded": "green",
         "failed": "bold red", "skipped": "dim"}

Target = Annotated[str, typer.Argument(help="FILE.py[:PIPELINE]", metavar="FILE[:PIPELINE]")]
Params = Annotated[list[str] | None, typer.Option("-p", "--param", help="Pipeline parameter NAME=VALUE")]
Store = Annotated[str | None, typer.Option("--store", help="Store root: path or URI "
                                           "(default $AIRFLOWDSL_HOME or ./.airflowdsl)")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Rerun every step")]
From = Annotated[str | None, typer.Option("--from", help="Rerun this step and everything downstream")]
Only = Annotated[list[str] | None, typer.Option("--only", help="Run just these steps (+ needed upstream)")]


def _table(states: dict[str, Any], started: dict[str, float]) -> Table:
    t = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for col in ("step", "kind", "status", "time"):
        t.add_column(col)
    now = time.time()
    for name, s in states.items():
        status = s.display_status
        dur = s.duration_s if s.duration_s is not None else (
            now - started[name] if status == "running" and name in started else None)
        t.add_row(name, s.kind, f"[{STYLE.get(status, '')}]{status}[/]",
                  f"{dur:.2f}s" if dur is not None else "")
    return t


def run(target: Target, param: Params = None, no_cache: NoCache = False, from_step: From = None,
        only: Only = None, store: Store = None) -> None:
    """Run a pipeline on Ray; cached steps are reused."""
    from airflowdsl.runtime.executor import execute

    # the live table is the progress display: keep Ray Data's bars out of it
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    with cli_errors():
        compiled = compile_target(target, param)
    for name in [from_step, *(only or [])]:
        if name is not None and name not in compiled.graph:
            fail(f"no step {name!r} in pipeline {compiled.name!r} (steps: {', '.join(compiled.order)})")
    console = Console(stderr=True)
    states: dict[str, Any] = {}
    started: dict[str, float] = {}
    with Live(_table(states, started), console=console, refresh_per_second=4,
              transient=False) as live:
        def on_event(run_id: str, name: str, step: Any) -> None:
            states[name] = step
            if step.status == "running":
                started.setdefault(name, time.time())
            live.update(_table(states, started))

        result = execute(compiled, store=store, force=no_cache, from_step=from_step, only=only,
                         on_event=on_event)
    _summary(result, compiled, console)
    if result.status != "succeeded":
        raise typer.Exit(1)


def _summary(result: Any, compiled: Any, console: Console) -> None:
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
    out.print(f"  details: airflowdsl show {result.id}" + _store_flag(result.store))
    if not result.succeeded:
        console.print(f"[bold red]error:[/] {result.error}", highlight=False)
        if result.traceback:
            console.print(result.traceback, highlight=False, markup=False)


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
    for col in ("step", "cache", "why"):
        t.add_column(col)
    for e in rows:
        verdict = "[cyan]hit[/]" if e.hit else "[yellow]run[/]"
        t.add_row(e.step, verdict, "; ".join(e.reasons))
    Console().print(t)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("explain")(explain)


__all__ = ["explain", "register", "run"]
