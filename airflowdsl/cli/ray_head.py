"""``airflowdsl ray up | down | status``: a warm local Ray head that runs connect to."""

from __future__ import annotations

import time

import typer

from airflowdsl.runtime import warmray


def register(app: typer.Typer) -> None:
    ray_app = typer.Typer(help="A warm local Ray head: runs connect to it instead of starting "
                               "Ray each time (AIRFLOWDSL_RAY=local opts out).",
                          no_args_is_help=True)

    @ray_app.command("up")
    def up(idle_timeout: float = typer.Option(warmray.IDLE_TIMEOUT_S, "--idle-timeout",
                                              help="stop after this many seconds without a run"),
           num_cpus: int = typer.Option(0, "--num-cpus", help="CPUs (default: all)")) -> None:
        """Start the warm head (or report the running one)."""
        try:
            head = warmray.up(num_cpus=num_cpus or None, idle_timeout=idle_timeout)
        except RuntimeError as exc:
            typer.echo(f"airflowdsl: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"warm Ray head at {head['address']} (stops after "
                   f"{head['idle_timeout']:.0f} s without a run; `airflowdsl ray down`)")
        if why := warmray.other_code(head):
            typer.echo(why, err=True)

    @ray_app.command("down")
    def down() -> None:
        """Stop the warm head and everything it started."""
        typer.echo("stopped the warm Ray head" if warmray.down() else "no warm Ray head running")

    @ray_app.command("status")
    def status() -> None:
        """Whether a warm head runs, where, and for how long."""
        head = warmray.read_head()
        if head is None:
            typer.echo("no warm Ray head running")
            raise typer.Exit(1)
        typer.echo(f"warm Ray head at {head['address']}, up {time.time() - head['started']:.0f} s,"
                   f" idle timeout {head['idle_timeout']:.0f} s, state {warmray.state_dir()}")
        if why := warmray.unusable(head):
            typer.echo(why, err=True)

    app.add_typer(ray_app, name="ray")
