"""``airflowdsl graph FILE[:PIPELINE] -o dag.svg [-p k=v ...] [--run RUN_ID]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airflowdsl.cli._load import cli_errors, compile_target, fail


def _run_statuses(run_id: str, store: str | None) -> dict[str, str]:
    """{step: status} of a recorded run (``cached`` for cache hits)."""
    from airflowdsl.runtime.history import History
    from airflowdsl.runtime.store import default_root

    root = default_root(store)
    run = History.for_root(root).run(run_id)
    if run is None:
        fail(f"no run {run_id!r} in {root}")
    return {s["name"]: "cached" if s.get("cached") else str(s["status"]) for s in run["steps"]}


def graph(
    target: Annotated[str, typer.Argument(help="FILE.py[:PIPELINE]", metavar="FILE[:PIPELINE]")],
    output: Annotated[Path, typer.Option("-o", "--output",
                                         help="Output file: .svg .png .pdf .dot or .mmd")
                      ] = Path("dag.svg"),
    param: Annotated[list[str] | None, typer.Option("-p", "--param",
                                                    help="Pipeline parameter NAME=VALUE")
                     ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Colour steps by this run's status")
                      ] = None,
    store: Annotated[str | None, typer.Option("--store", help="Store root (for --run)")] = None,
) -> None:
    """Compile a pipeline (nothing runs) and draw its DAG."""
    with cli_errors():
        compiled = compile_target(target, param)
    status = _run_statuses(run_id, store) if run_id else None
    try:
        written = compiled.render(output, status=status)
    except Exception as err:  # bad suffix, unwritable path, graphviz failure
        fail(f"cannot render {output}: {err}")
    g = compiled.graph
    typer.echo(f"wrote {written} ({g.number_of_nodes()} steps, {g.number_of_edges()} edges)")


def register(app: typer.Typer) -> None:
    app.command("graph")(graph)


__all__ = ["graph", "register"]
