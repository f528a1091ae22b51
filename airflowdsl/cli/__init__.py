"""The ``airflowdsl`` command line (typer).

Each command lives in its own module ``airflowdsl/cli/<name>.py`` exposing
``register(app: typer.Typer) -> None``; every such module (not starting with ``_``)
is found and registered here, so adding a command needs no edit of this file.
Shared helpers (load ``FILE[:PIPELINE]``, ``-p k=v``, exit code 2) are in ``_load``.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(name="airflowdsl", help="Typed, cached ML pipelines on Ray.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode="rich")


@app.callback()
def _root() -> None:
    """Typed, cached ML pipelines on Ray."""


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)


_register_commands()


def main() -> None:
    """Console-script entry point (``airflowdsl = airflowdsl.cli:main``)."""
    app()


__all__ = ["app", "main"]
