"""The resource model's shared pieces: the nested-work reserve, bounded waits for resources.

The whole model is written down in docs/runtime.md ("Resource model"). In short:

1. A step task holds exactly what it asks for (``num_cpus`` default 0, ``num_gpus``,
   ``memory``, ``resources``); nothing fractional is reserved on its behalf.
2. The driver starts CPU-holding steps only while the CPUs held by running steps stay
   at most ``cluster CPUs - NESTED_RESERVE_CPUS``: one whole CPU is always left for the
   Ray work that steps start (a Ray Data task asks for 1 CPU).
3. Data first, then reservations: trainers, the Tuner and BatchPredictor materialize
   their input datasets *before* they place an actor group, trials or an actor pool,
   so nothing that holds a reservation ever waits on a Ray Data task.
4. Every wait for resources has a limit (:func:`pending_timeout`) and a message naming
   what waits, what it asks for and what the cluster has free.
"""

from __future__ import annotations

import os
from typing import Any

from airflowdsl.errors import ResourceError

#: CPUs that CPU-holding steps always leave free for nested Ray work (a whole CPU:
#: Ray Data's tasks ask for 1 CPU each; less than one free CPU starves them).
NESTED_RESERVE_CPUS = 1.0

#: Default limit, in seconds, of any wait for resources (``AIRFLOWDSL_PENDING_TIMEOUT``).
DEFAULT_PENDING_TIMEOUT_S = 60.0


def pending_timeout() -> float | None:
    """The limit of a wait for resources: ``$AIRFLOWDSL_PENDING_TIMEOUT`` seconds (``0``
    or ``none``: wait without limit), else the bound step's, else 60 s."""
    raw = os.environ.get("AIRFLOWDSL_PENDING_TIMEOUT")
    if raw is None:
        from airflowdsl.air import progress

        ctx = progress.current()
        return ctx.pending_timeout if ctx is not None else DEFAULT_PENDING_TIMEOUT_S
    if raw.strip().lower() in ("0", "none", "inf", ""):
        return None
    return float(raw)


def own_resources() -> dict[str, float]:
    """What the current Ray task/actor holds (its CPUs count against nested work)."""
    try:
        import ray

        if not ray.is_initialized():
            return {}
        assigned = ray.get_runtime_context().get_assigned_resources()
    except Exception:  # noqa: BLE001 - the driver: holds nothing
        return {}
    held: dict[str, float] = {}
    for name, amount in assigned.items():
        base = name.split("_group_")[0]  # placement-group resources: CPU_group_<id>
        held[base] = held.get(base, 0.0) + float(amount)
    return held


def free_for_nested() -> dict[str, float]:
    """The cluster's resources less what the calling task holds itself."""
    import ray

    total = {k: float(v) for k, v in ray.cluster_resources().items()}
    for name, amount in own_resources().items():
        if name in total:
            total[name] = max(total[name] - amount, 0.0)
    return total


def strict_placement_problem(bundle: dict[str, float], count: int, strategy: str,
                             nodes: list[dict[str, float]]) -> str | None:
    """Why ``count`` bundles ``bundle`` can never be placed with ``strategy`` on nodes of
    these total resources (``STRICT_SPREAD``: one bundle per node; ``STRICT_PACK``: all on
    one node), or None when they can. ``PACK``/``SPREAD`` are soft: always None here."""
    def holds(node: dict[str, float], times: int) -> bool:
        return all(node.get(k, 0.0) + 1e-9 >= v * times for k, v in bundle.items() if v)

    if strategy == "STRICT_SPREAD":
        able = sum(1 for node in nodes if holds(node, 1))
        if able < count:
            return (f"STRICT_SPREAD puts each of the {count} workers on its own node, but only "
                    f"{able} node(s) of the cluster can hold one worker ({describe(bundle)})")
    elif strategy == "STRICT_PACK" and not any(holds(node, count) for node in nodes):
        return (f"STRICT_PACK puts all {count} workers ({describe(bundle)} each) on one node, "
                f"but no node of the cluster holds that much")
    return None


def describe(resources: dict[str, float]) -> str:
    """``{'CPU': 1.0, 'memory': 2e9}`` as ``1 CPU, 1.9 GiB memory``."""
    parts = []
    for name, amount in sorted(resources.items()):
        if name.startswith("node:") or name == "object_store_memory" or not amount:
            continue
        if name == "memory":
            parts.append(f"{amount / 2**30:.2g} GiB memory")
        else:
            parts.append(f"{amount:g} {name}")
    return ", ".join(parts) or "nothing"


def wait_placement(pg: Any, *, what: str, asks: str) -> None:
    """Wait for placement group ``pg`` within :func:`pending_timeout`; on timeout remove
    it and raise :class:`ResourceError` naming ``what`` waits and what it ``asks`` for."""
    import ray
    from ray.util.placement_group import remove_placement_group

    limit = pending_timeout()
    ready, _ = ray.wait([pg.ready()], timeout=limit)
    if ready:
        return
    remove_placement_group(pg)
    free = describe({k: float(v) for k, v in ray.available_resources().items()})
    raise ResourceError(
        f"{what} waited {limit:g} s for resources and got none: it asks for {asks}, the "
        f"cluster has {free} free (other steps, trainers or trials hold the rest). Free "
        f"resources, ask for less, or set AIRFLOWDSL_PENDING_TIMEOUT (seconds, 0 = wait "
        f"without limit) / --pending-timeout to wait longer")


__all__ = ["DEFAULT_PENDING_TIMEOUT_S", "NESTED_RESERVE_CPUS", "ResourceError", "describe",
           "free_for_nested", "own_resources", "pending_timeout", "strict_placement_problem",
           "wait_placement"]
