"""``airflowdsl ui [--store URI] [--host 127.0.0.1] [--port 8265]``: the local web page."""

from __future__ import annotations

from typing import Annotated

import typer

from airflowdsl.cli._load import fail
from airflowdsl.cli.run import Store


def ui(store: Store = None,
       host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this "
                                              "machine only)")] = "127.0.0.1",
       port: Annotated[int | None, typer.Option(
           help="Port (default: the first free one from 8265 on)")] = None) -> None:
    """Serve a read-only web page of a store's runs: DAGs, logs, training curves, trials."""
    from airflowdsl.errors import LoadError

    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from airflowdsl.ui.server import serve
    except ImportError as err:
        fail(f"airflowdsl ui needs the ui extra ({err.name} is missing): "
             "pip install 'airflowdsl[ui]'")
    try:
        serve(store, host=host, port=port, announce=lambda m: typer.echo(m, err=True))
    except LoadError as err:
        fail(str(err))


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


__all__ = ["register", "ui"]
