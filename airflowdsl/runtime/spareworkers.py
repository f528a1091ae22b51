"""Spare workers on the warm head, so a run in a new process does not wait for one.

Ray binds a worker process to the first job that leases it, and every run in a new
process is a new Ray job: without spare workers each such run waits for a worker
process to start (~1 s on a 2-core machine). The warm head's supervisor
(``runtime.warmray``) keeps :func:`spare_workers` *unassigned* idle workers: every
``KEEP_EVERY_S`` it asks the raylet how many it has (``GetNodeStats``) and starts the
missing ones, less those on their way (Ray's ``PrestartWorkers``, kept alive for the
head's idle timeout). Each worker of the head runs :func:`preload` when it starts
(numpy, the step task's modules and what Ray's serialization context of a job imports:
library code only, never a pipeline's own module -- that is shipped by value with every
run, so an edited step always runs the edited code).
``AIRFLOWDSL_RAY_SPARE_WORKERS=0`` turns both off.
"""

from __future__ import annotations

import os
import time
from typing import Any

#: How often the supervisor counts the unassigned idle workers; how long it waits after
#: the raylet did not answer; how long a worker it asked for counts as on its way (a new
#: worker takes ~1-2 s to register on a loaded 2-core machine; one not registered by then
#: is asked for again).
KEEP_EVERY_S = 0.5
KEEP_COOLDOWN_S = 5.0
STARTING_S = 10.0

#: Ray's environment variable naming a function each worker runs when it starts (what
#: ``runtime_env={"worker_process_setup_hook": ...}`` sets for a job's workers).
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"


def spare_workers(num_cpus: int | None) -> int:
    """How many unassigned idle workers the head keeps: ``AIRFLOWDSL_RAY_SPARE_WORKERS``,
    default one per CPU, at most 2 (a run in a new process usually re-runs a step or two).

    Raises:
        ValueError: the variable is not a whole number.
    """
    env = os.environ.get("AIRFLOWDSL_RAY_SPARE_WORKERS", "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            raise ValueError(f"AIRFLOWDSL_RAY_SPARE_WORKERS={env!r}: expected a whole number "
                             "of workers (0 turns spare workers off)") from None
    return max(1, min(2, num_cpus or os.cpu_count() or 1))


def preload() -> None:
    """Run by each worker of the warm head when it starts: import what a step task
    imports anyway, so the first step of the next run does not wait for it. Never fails
    (a failing setup hook would stop the worker)."""
    try:
        import numpy  # noqa: F401

        import airflowdsl.runtime.tasks  # noqa: F401
    except Exception:  # pragma: no cover - a broken install shows when a step runs
        pass
    preload_serializers()


class _NoRegistry:
    """Takes Ray's serializer registrations and keeps none (``preload_serializers``)."""

    def _register_cloudpickle_serializer(self, *args: Any, **kwargs: Any) -> None:
        pass

    def _register_cloudpickle_reducer(self, *args: Any, **kwargs: Any) -> None:
        pass


def preload_serializers() -> None:
    """Import what Ray's per-job serialization context imports when it is made: pydantic's
    v1 fields, starlette, pyarrow and ``pyarrow.json`` (``ray.util.serialization_addons``;
    ~0.2-0.4 s on a loaded 2-core machine). A worker makes that context for its first
    task of a job, after the task body, before its result can be returned: without this
    every run in a new process waited for those imports. Registers nothing (Ray registers
    them itself, per job). Never fails."""
    try:
        from ray.util import serialization_addons

        serialization_addons.apply(_NoRegistry())
    except Exception:  # pragma: no cover - another Ray version: only slower
        pass


class Keeper:
    """Keeps ``spare`` unassigned idle workers on the raylet at ``raylet`` (host:port)."""

    def __init__(self, raylet: str, spare: int, keep_alive_s: float) -> None:
        self.raylet, self.spare, self.keep_alive_s = raylet, spare, keep_alive_s
        self.next_check = 0.0
        self.stub: Any = None
        self.registered: set[int] = set()  # every worker's pid at the last count
        self.asked: list[float] = []  # when each worker on its way was asked for

    def worker_env(self, env: dict[str, str]) -> dict[str, str]:
        """What to add to the head's environment: the preload hook (unless off or set)."""
        if self.spare <= 0 or SETUP_HOOK_ENV in env:
            return {}
        return {SETUP_HOOK_ENV: f"{__name__}.preload"}

    def tick(self) -> None:
        """Start the missing spare workers (at most every ``KEEP_EVERY_S``); a raylet that
        does not answer is asked again after ``KEEP_COOLDOWN_S``."""
        now = time.monotonic()
        if self.spare <= 0 or now < self.next_check:
            return
        self.next_check = now + KEEP_EVERY_S
        try:
            missing = self.missing(now, *self.workers())
            if missing > 0:
                pb, common = _protos()
                self.stub.PrestartWorkers(pb.PrestartWorkersRequest(
                    language=common.PYTHON, num_workers=missing,
                    keep_alive_duration_secs=int(self.keep_alive_s)), timeout=10)
                self.asked += [now] * missing
        except Exception as exc:  # busy or going away: try again later
            print(f"spare workers: {exc!r}", flush=True)
            self.next_check = now + KEEP_COOLDOWN_S

    def missing(self, now: float, registered: set[int], unassigned: set[int]) -> int:
        """How many workers to start now: ``spare`` less the unassigned idle ones less those
        asked for that have not registered yet. Each worker that registered since the last
        count settles the oldest request (one that a run leased at once never shows up as
        idle, so arrivals are counted over all workers); a request older than
        ``STARTING_S`` is dropped (the worker died starting: ask again)."""
        arrived = len(registered - self.registered)
        self.registered = registered
        del self.asked[:arrived]
        self.asked = [t for t in self.asked if now - t < STARTING_S]
        return self.spare - len(unassigned) - len(self.asked)

    def unassigned(self) -> set[int]:
        """Pids of the idle workers of no job yet (a job's own workers never count)."""
        return self.workers()[1]

    def workers(self) -> tuple[set[int], set[int]]:
        """(pids of every worker registered with the raylet, those idle of no job yet)."""
        pb, common = _protos()
        if self.stub is None:
            os.environ["RAY_AUTH_MODE"] = "token"  # the head's token authentication
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")
            from ray._private.grpc_utils import init_grpc_channel
            from ray.core.generated import node_manager_pb2_grpc

            self.stub = node_manager_pb2_grpc.NodeManagerServiceStub(
                init_grpc_channel(self.raylet))
        stats = self.stub.GetNodeStats(pb.GetNodeStatsRequest(include_memory_info=False),
                                       timeout=10)
        ours = [w for w in stats.core_workers_stats if w.worker_type == common.WORKER]
        return ({int(w.pid) for w in ours},
                {int(w.pid) for w in ours if not w.job_id.strip(b"\xff")
                 and not w.num_running_tasks and not w.actor_id.strip(b"\xff")})


def _protos() -> tuple[Any, Any]:
    from ray.core.generated import common_pb2, node_manager_pb2

    return node_manager_pb2, common_pb2


__all__ = ["SETUP_HOOK_ENV", "Keeper", "preload", "preload_serializers", "spare_workers"]
