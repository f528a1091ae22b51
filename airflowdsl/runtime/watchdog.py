"""The driver's stall watchdog: nothing a step starts may wait forever for resources.

While steps run, the driver samples the cluster every ``SAMPLE_S``: the resource
demands Ray has not been able to place (tasks, actors, placement groups; read from the
GCS, no dashboard needed), the free resources, and a progress signature (finished
steps, the progress records running steps publish: epochs, rounds, trials). When the
same unplaceable demand has stood for ``limit`` seconds while the free resources and
the progress signature did not move, :meth:`StallMonitor.poll` returns a
:class:`Stall` whose message names the running steps, what they hold, what is pending
and what the cluster has free; the scheduler then fails those steps.

Demands that ask only for ``memory`` are step tasks queued behind the step slots
(``raycluster.step_slots``): ordinary queueing, not a stall.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflowdsl.air.resources import describe
from airflowdsl.runtime.resources import Request

#: Seconds between two cluster samples.
SAMPLE_S = 2.0

Shape = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Sample:
    """One look at the cluster: unplaceable demand shapes, free resources, progress."""

    time: float
    pending: tuple[tuple[Shape, int], ...]  # (shape, count), only shapes that do not fit
    free: Mapping[str, float]
    progress: tuple[Any, ...]


@dataclass(frozen=True)
class Stall:
    steps: tuple[str, ...]
    message: str


def _base(name: str) -> str:
    return name.split("_group_")[0]


def _fits(shape: Shape, free: Mapping[str, float]) -> bool:
    return all(free.get(_base(k), 0.0) + 1e-9 >= v for k, v in shape)


def _counts(shape: Shape) -> bool:
    """A demand that waits for CPU, GPU or a custom resource (not a slot's memory)."""
    return any(_base(k) not in ("memory", "object_store_memory") and v for k, v in shape)


def read_sample(progress: tuple[Any, ...]) -> Sample:
    """Sample the connected Ray cluster (GCS autoscaler state; ~4 ms)."""
    import ray
    from ray.autoscaler.v2.sdk import get_cluster_status

    status = get_cluster_status(ray.get_runtime_context().gcs_address)
    free = {k: float(v) for k, v in status.available_resources().items()}
    shapes: dict[Shape, int] = {}
    demand = status.resource_demands
    for d in demand.ray_task_actor_demand:
        for req in d.bundles_by_count:
            shape = tuple(sorted((k, float(v)) for k, v in req.bundle.items()))
            shapes[shape] = shapes.get(shape, 0) + int(req.count)
    for pg in demand.placement_group_demand:
        for req in pg.bundles_by_count:
            shape = tuple(sorted((k, float(v)) for k, v in req.bundle.items()))
            shapes[shape] = shapes.get(shape, 0) + int(req.count)
    pending = tuple(sorted((s, n) for s, n in shapes.items() if _counts(s) and not _fits(s, free)))
    return Sample(time.monotonic(), pending, free, progress)


class StallMonitor:
    """Feed it samples (``observe``) or let it read them (``poll``); ``limit=None``: never."""

    def __init__(self, limit: float | None, *,
                 read: Callable[[tuple[Any, ...]], Sample] = read_sample) -> None:
        self.limit = limit
        self._read = read
        self._signature: tuple[Any, ...] | None = None
        self._since = 0.0
        self._last_poll = time.monotonic()  # the first look after SAMPLE_S

    def observe(self, sample: Sample) -> float:
        """Seconds the current unplaceable demand has stood still (0 when there is none)."""
        if not sample.pending:
            self._signature = None
            return 0.0
        free = tuple(sorted((k, round(v, 3)) for k, v in sample.free.items()
                            if not k.startswith("node:")))
        signature = (sample.pending, free, sample.progress)
        if signature != self._signature:
            self._signature, self._since = signature, sample.time
            return 0.0
        return sample.time - self._since

    def poll(self, running: Mapping[str, Request], progress: tuple[Any, ...]) -> Stall | None:
        """At most every ``SAMPLE_S``: a :class:`Stall` when the limit has passed."""
        now = time.monotonic()
        if self.limit is None or not running or now - self._last_poll < SAMPLE_S:
            return None
        self._last_poll = now
        try:
            sample = self._read(progress)
        except Exception:  # noqa: BLE001 - a GCS hiccup: look again next time
            return None
        stood = self.observe(sample)
        if stood < self.limit:
            return None
        return Stall(tuple(running), stall_message(running, sample, stood))


def stall_message(running: Mapping[str, Request], sample: Sample, stood: float) -> str:
    held = "; ".join(f"{name!r} holds {req.describe()}" for name, req in running.items())
    pending = "; ".join(f"{n} x {{{describe({_base(k): v for k, v in shape})}}}"
                        for shape, n in sample.pending)
    return (f"Ray work has waited {stood:.0f} s for resources with no progress while these "
            f"steps ran ({held}): pending {pending}; the cluster has "
            f"{describe(dict(sample.free))} free. The step was stopped instead of waiting "
            f"forever. Give the step's nested work fewer resources (ScalingConfig, "
            f"num_cpus=), run fewer branches at once, or wait longer with "
            f"--pending-timeout SECONDS (0 = no limit; run(pending_timeout=...))")


__all__ = ["SAMPLE_S", "Sample", "Stall", "StallMonitor", "read_sample", "stall_message"]
