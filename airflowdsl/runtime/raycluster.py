"""Connecting to Ray, the way Ray users expect.

An initialized Ray (``ray.init`` already called) is used as is; else
``ray.init()`` connects to ``$RAY_ADDRESS`` when set, or starts a local Ray.
Only a local Ray that airflowdsl started is shut down, at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Iterable
from typing import Any

_started = False
_remote_fn: Any = None
_task_options: dict[tuple[Any, ...], Any] = {}  # ``.options()`` builds a class each call
_cluster_cpus: tuple[float, float] | None = None  # (CPUs, when read)
_slots: tuple[Any, Any] | None = None  # (key, placement group)

#: What one step slot holds: a token CPU share (see ``step_slots``).
SLOT_CPU = 0.001

#: Default ``num_cpus`` of a step task by kind. Steps mostly coordinate nested
#: Ray work (Ray Data operators, training actor groups) that needs CPUs of its
#: own. A step task holding any CPU fragments a small cluster: on 2 CPUs, two
#: branches holding 0.25 each leave 1.5, and two concurrent Ray Data
#: executions, each allotted 1 CPU, stalled for minutes (measured). So steps
#: hold no CPU unless they ask; the scheduler bounds how many run at once
#: (``max_in_flight``) instead. Set ``num_cpus=`` on CPU-heavy in-process steps.
DEFAULT_NUM_CPUS: dict[str, float] = {}
FALLBACK_NUM_CPUS = 0.0


def max_in_flight() -> tuple[int, int, int]:
    """Scheduler bounds: (steps submitted at once: 4 per cluster CPU, at least 4;
    of them ready to start: 1 per CPU, at least 2 -- zero-CPU tasks would otherwise
    spawn a worker process each; train/tune steps: 1 per 8 CPUs, at least 1)."""
    import time

    import ray

    global _cluster_cpus
    now = time.monotonic()
    if _cluster_cpus is None or now - _cluster_cpus[1] > 10:  # an autoscaler may add nodes
        _cluster_cpus = (ray.cluster_resources().get("CPU", 1), now)
    cpus = _cluster_cpus[0]
    return max(4, int(4 * cpus)), max(2, int(cpus)), max(1, int(cpus // 8))


def step_slots(n: int) -> Any:
    """A placement group of ``n`` bundles of ``SLOT_CPU`` that default step tasks run in.

    Default steps hold no real CPU (nested Ray Data / training work needs the CPUs), but
    Ray starts a worker process for every zero-CPU task it can start at once (a 50-way
    fan-out with 8 steps in flight: 15 ms/step). A step task asking ``SLOT_CPU`` inside one of ``n`` bundles
    of ``SLOT_CPU`` can only run ``n`` at a time, and Ray queues the rest and feeds them
    to the same two leased workers itself, as it does for bare 1-CPU tasks (measured:
    1.42 ms/step vs bare Ray's 1.46 for a fan-out; lanes through the driver: ~2.9).
    The group (0.002 CPU in all) lives as long as this driver's Ray job; children of a
    step are not captured into it. None when it cannot be placed (the scheduler then
    bounds the steps itself)."""
    import ray
    from ray.util.placement_group import placement_group

    global _slots
    key = (ray.get_runtime_context().get_job_id(), n)
    if _slots is not None and _slots[0] == key:
        return _slots[1]
    pg = placement_group([{"CPU": SLOT_CPU} for _ in range(n)], strategy="SPREAD",
                         name=f"airflowdsl-step-slots-{os.getpid()}")
    try:
        ray.get(pg.ready(), timeout=30)
    except Exception:  # noqa: BLE001 - e.g. a cluster without CPUs: no slots
        ray.util.remove_placement_group(pg)
        _slots = (key, None)
        return None
    _slots = (key, pg)
    return pg


def ensure_ray() -> None:
    global _started
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
        return
    ray.init(include_dashboard=False)
    _started = True
    atexit.register(_shutdown)


def _shutdown() -> None:
    import ray

    if _started and ray.is_initialized():
        ray.shutdown()


def ship_by_value(modules: Iterable[str]) -> None:
    """Pickle the user's own modules by value, so workers run the code the driver sees
    (no stale imports in long-lived workers, no PYTHONPATH needed for tmp-dir modules)."""
    import ray.cloudpickle as cp

    for name in modules:
        mod = sys.modules.get(name)
        if mod is not None and name != "__main__":
            try:
                cp.register_pickle_by_value(mod)
            except (ValueError, TypeError):
                pass


def step_task(spec: Any, n_returns: int, slots: Any = None) -> Any:
    """The step's ``ray.remote`` task with its resources and retries; a step that asks
    for no resources runs in one of ``slots`` (``step_slots``) when given."""
    global _remote_fn
    import ray

    from airflowdsl.runtime.tasks import run_step

    if _remote_fn is None:
        _remote_fn = ray.remote(run_step)
    num_cpus = spec.num_cpus if spec.num_cpus is not None else \
        DEFAULT_NUM_CPUS.get(spec.kind, FALLBACK_NUM_CPUS)
    slotted = slots is not None and not (num_cpus or spec.num_gpus or spec.memory)
    key = (num_cpus, spec.num_gpus, spec.memory, spec.retries, n_returns, spec.name,
           slots.id if slotted else None)
    task = _task_options.get(key)
    if task is None:
        opts: dict[str, Any] = {"num_cpus": num_cpus, "num_returns": n_returns,
                                "max_retries": spec.retries,
                                "retry_exceptions": spec.retries > 0,
                                "name": f"airflowdsl:{spec.name}"}
        if spec.num_gpus:
            opts["num_gpus"] = spec.num_gpus
        if spec.memory:
            opts["memory"] = spec.memory
        if slotted:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            opts["num_cpus"] = SLOT_CPU
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                slots, placement_group_capture_child_tasks=False)
        task = _task_options[key] = _remote_fn.options(**opts)
    return task
