"""The driver's Ray connection and what it caches about it, in one object.

An initialized Ray (``ray.init`` already called) is used as is; else ``ray.init()``
connects to ``$RAY_ADDRESS`` when set, else to the warm head of ``airflowdsl ray up``
when one runs (``runtime.warmray``; ``AIRFLOWDSL_RAY=local`` opts out), else starts a
local Ray. Only a local Ray that
airflowdsl started is shut down, at interpreter exit. :class:`RayCluster` holds the
state that belongs to one Ray job (the step task and its ``.options()`` variants, the
step-slot placement group, the cluster snapshot); it notices a new job (a test that
shut Ray down and started it again) and starts afresh.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from airflowdsl.runtime import warmray
from airflowdsl.runtime.contracts import StepLike
from airflowdsl.runtime.resources import ClusterView, Request

#: What one step slot holds: 1 MiB of Ray's ``memory`` resource -- no CPU, no GPU.
SLOT_MEMORY = 2**20

#: How long a cluster snapshot is trusted (an autoscaler may add nodes).
CLUSTER_TTL_S = 10.0


class RayCluster:
    """The connection to Ray and per-job caches (one per driver process: ``current()``)."""

    _instance: RayCluster | None = None

    def __init__(self) -> None:
        self.started = False  # we started a local Ray: shut it down at exit
        self._job: Any = None
        self._remote_fn: Any = None
        self._task_options: dict[tuple[Any, ...], Any] = {}
        self._view: tuple[ClusterView, float] | None = None
        self._slots: dict[int, Any] = {}

    @classmethod
    def current(cls) -> RayCluster:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    # --- lifetime ---------------------------------------------------------------------

    def connect(self, *, log_to_driver: bool = True, quiet: bool = False) -> None:
        """Use the initialized Ray, or connect to ``$RAY_ADDRESS``, or start a local one;
        ``quiet``: Ray's own start-up messages below ERROR are not printed (the CLI
        without ``-v``: its live table is the display)."""
        import logging

        import ray

        if not ray.is_initialized():
            opts: dict[str, Any] = {"log_to_driver": log_to_driver}
            if quiet:
                opts["logging_level"] = logging.ERROR
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address=os.environ["RAY_ADDRESS"], **opts)
            elif warmray.enabled() and (head := warmray.usable_head()) is not None:
                warmray.use_head(head)  # ``airflowdsl ray up``: no Ray start per run
                ray.init(address=head["address"], **opts)
                # at exit, disconnect before Ray's own exit hook, which first sleeps 0.5 s
                # so that worker output still in flight gets printed (a step's output is
                # in its log file already); atexit runs this one first (registered later)
                atexit.register(_disconnect, ray.get_runtime_context().get_job_id())
            else:
                ray.init(include_dashboard=False, **opts)
                if not self.started:
                    atexit.register(self.shutdown)
                self.started = True
        job = ray.get_runtime_context().get_job_id()
        if job != self._job:  # a new Ray job: nothing cached for the old one is valid
            self._job, self._remote_fn, self._view = job, None, None
            self._task_options.clear()
            self._slots.clear()

    def shutdown(self) -> None:
        import ray

        if self.started and ray.is_initialized():
            ray.shutdown()
        self.started = False

    # --- what the cluster has ---------------------------------------------------------

    def view(self) -> ClusterView:
        now = time.monotonic()
        if self._view is None or now - self._view[1] > CLUSTER_TTL_S:
            self._view = (ClusterView.read(), now)
        return self._view[0]

    def bounds(self) -> tuple[int, int]:
        """Scheduler bounds: (steps submitted at once: 4 per CPU, at least 4; of them
        ready to start: one per CPU, at least 2)."""
        cpus = self.view().cpus
        return max(4, int(4 * cpus)), max(2, int(cpus))

    def step_slots(self, n: int) -> Any:
        """A placement group of ``n`` bundles of ``SLOT_MEMORY`` that default steps run in.

        Ray starts a worker process for every zero-resource task it can start at once (a
        50-way fan-out: 15-22 ms/step); a step task asking ``SLOT_MEMORY`` inside one of
        ``n`` such bundles runs ``n`` at a time, and Ray feeds the rest to the same leased
        workers (measured: 1.02 ms/step vs 0.92 for bare 1-CPU tasks). The bundles hold
        no CPU or GPU, so the slots bound concurrency without taking anything nested Ray
        work needs. None when the group cannot be placed (the scheduler then bounds the
        steps itself)."""
        if n in self._slots:
            return self._slots[n]
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        pg = placement_group([{"memory": SLOT_MEMORY} for _ in range(n)], strategy="SPREAD",
                             name=f"airflowdsl-step-slots-{os.getpid()}-{n}")
        ready, _ = ray.wait([pg.ready()], timeout=30)
        if not ready:
            remove_placement_group(pg)
            pg = None
        self._slots[n] = pg
        return pg

    # --- step tasks -------------------------------------------------------------------

    def step_task(self, spec: StepLike, n_returns: int, slots: Any = None, *,
                  group: int = 0) -> Any:
        """The step's ``ray.remote`` task with its request and retries; a step that asks
        for nothing runs in one of ``slots`` (``step_slots``) when given. ``group``: the
        task of a group of that many steps starting with ``spec`` (``tasks.run_group``;
        ``runtime.fusion``)."""
        import ray

        from airflowdsl.runtime.tasks import run_group, run_step

        if self._remote_fn is None:
            self._remote_fn = (ray.remote(run_step), ray.remote(run_group))
        req = Request.of(spec)
        slotted = slots is not None and req.empty
        events = task_events()
        key = (req.cpus, req.gpus, req.memory, tuple(sorted(req.custom.items())),
               spec.retries, n_returns, spec.name, slots.id if slotted else None, events,
               group)
        task = self._task_options.get(key)
        if task is None:
            opts: dict[str, Any] = {"num_cpus": req.cpus, "num_returns": n_returns,
                                    "max_retries": spec.retries,
                                    "retry_exceptions": spec.retries > 0,
                                    "name": f"airflowdsl:{spec.name}" + (
                                        f"+{group - 1}" if group else ""),
                                    "enable_task_events": events}
            if req.gpus:
                opts["num_gpus"] = req.gpus
            if req.memory:
                opts["memory"] = req.memory
            if req.custom:
                opts["resources"] = dict(req.custom)
            if slotted:
                from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

                opts["memory"] = SLOT_MEMORY
                opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    slots, placement_group_capture_child_tasks=False)
            task = self._task_options[key] = self._remote_fn[1 if group else 0].options(**opts)
        return task


def task_events() -> bool:
    """Whether step tasks send Ray's task events (``ray list tasks``, the dashboard's task
    timeline): on, as Ray does, unless ``AIRFLOWDSL_RAY_TASK_EVENTS=0``. Each event costs
    CPU in the driver and the worker per state change: bare Ray tasks shaped like step
    tasks (50-way fan-out, 2 CPUs) took 1.39x plain Ray's time with them, 1.04x without;
    in the pipelines, off helped the fan-out but not the chain (bench/RESULTS.md). A
    step's status, timings and log are in the run history either way."""
    return os.environ.get("AIRFLOWDSL_RAY_TASK_EVENTS", "1") != "0"


def _disconnect(job: str) -> None:
    """Leave the warm head at interpreter exit (only the connection this process made:
    the same Ray job, still connected)."""
    import ray

    if ray.is_initialized() and ray.get_runtime_context().get_job_id() == job:
        ray.shutdown()
    skip_final_gc()


def skip_final_gc() -> None:
    """At interpreter exit, after Ray is left: collect the garbage there is now (its
    finalizers run as usual), then exempt every object still alive from the collections
    of interpreter teardown (``gc.freeze``). Those visit every object Ray's modules
    made: ~0.3 s of a run's exit on a loaded 2-core machine, ~0.02 s frozen. What is
    left unfinalized is what Python never promises to finalize (objects still alive
    when the interpreter exits); module globals are still released and atexit hooks
    still run."""
    import gc

    gc.collect()
    gc.freeze()


def ship_by_value(modules: Iterable[str], *, pickler: Any = None) -> None:
    """Pickle the user's own modules by value, so workers run the code the driver sees
    (no stale imports in long-lived workers, no PYTHONPATH needed for tmp-dir modules).
    ``pickler``: the cloudpickle to tell (default Ray's copy)."""
    if pickler is None:
        import ray.cloudpickle as pickler

    for name in modules:
        mod = sys.modules.get(name)
        if mod is not None and name != "__main__":
            try:
                pickler.register_pickle_by_value(mod)
            except (ValueError, TypeError):
                pass


__all__ = ["SLOT_MEMORY", "RayCluster", "ship_by_value"]
