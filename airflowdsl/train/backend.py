"""Backend hooks: what a framework needs set up on the worker group around the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflowdsl.air.config import ScalingConfig
    from airflowdsl.train.worker_group import WorkerGroup


class Backend:
    """No-op backend; frameworks override the hooks they need."""

    #: environment variables every worker gets before anything is imported there
    worker_env: dict[str, str] = {}
    #: modules each worker starts importing in a background thread as soon as it starts,
    #: so a framework's import overlaps actor start-up, rendezvous and the data split
    worker_imports: tuple[str, ...] = ()

    def on_start(self, group: WorkerGroup, scaling: ScalingConfig) -> None:
        """After the actors exist, before the loop starts (e.g. init_process_group)."""

    def on_shutdown(self, group: WorkerGroup) -> None:
        """After the loop ended, before the actors are killed."""

    def on_abort(self, group: WorkerGroup) -> None:
        """Instead of ``on_shutdown`` when the attempt failed: free driver-side resources
        (a tracker, a rendezvous server) without talking to the workers, which may be dead."""

    def session_extras(self, rank: int, scaling: ScalingConfig) -> dict[str, Any]:
        """Backend data put in each worker's session (``session.extras``)."""
        return {}


__all__ = ["Backend"]
