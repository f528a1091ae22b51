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

    def on_start(self, group: WorkerGroup, scaling: ScalingConfig) -> None:
        """After the actors exist, before the loop starts (e.g. init_process_group)."""

    def on_shutdown(self, group: WorkerGroup) -> None:
        """After the loop ended, before the actors are killed."""

    def session_extras(self, rank: int, scaling: ScalingConfig) -> dict[str, Any]:
        """Backend data put in each worker's session (``session.extras``)."""
        return {}


__all__ = ["Backend"]
