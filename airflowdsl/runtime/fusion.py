"""Which cheap steps share one Ray task (a *group*), decided before a run submits anything.

A Ray task costs ~1-2 ms of scheduling, leasing and returning on a small machine; a step
whose own work (its call, persisting its output) took far less than that last time pays
mostly for the task. Such steps are grouped, in two ways that lose no parallelism:

- **a chain**: a step whose only upstream that runs is the previous step, which feeds
  nothing else that runs, joins that step's group (they could never run at once);
- **siblings**: groups (or single steps) with the same upstreams that run are packed into
  as many groups as the run has step slots (they run side by side, as many as the slots
  would have run at once anyway).

A group runs its steps one after the other in one task (``tasks.run_group``); each keeps
its own cache key, log, lease, manifest and summary, and its outputs still go to steps
outside the group as object refs. A step is grouped only when it ran before (its last
recorded time, from the run history, at most ``STEP_S``), asks for no resources, has no
retries, and the run persists to a local store; a group's recorded times add up to at
most ``GROUP_S`` (a group reports its steps when it ends, so a live view lags by at most
about that). ``AIRFLOWDSL_FUSE=0`` turns grouping off.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from airflowdsl.runtime.resources import Request

#: A step whose last recorded time was at most this may share a task.
STEP_S = 0.01
#: The recorded times of one group's steps add up to at most this.
GROUP_S = 0.1


def enabled() -> bool:
    """Grouping is on unless ``AIRFLOWDSL_FUSE=0``."""
    return os.environ.get("AIRFLOWDSL_FUSE", "1").strip().lower() not in ("0", "false", "no")


def allowed(store: Any) -> bool:
    """Whether a run persisting to ``store`` (None: persistence off) may group steps: on
    (``enabled``), and a local store (a group's writes go beside its consumers)."""
    return enabled() and store is not None and bool(getattr(store, "is_local", False))


def fusable(plans: Mapping[str, Any], todo: list[str], costs: Mapping[str, float],
            store: Any) -> set[str]:
    """The steps of ``todo`` that may share a task (see the module docstring)."""
    if not allowed(store):
        return set()
    out = set()
    for name in todo:
        spec, cost = plans[name].spec, costs.get(name)
        if cost is not None and cost <= STEP_S and spec.retries == 0 and Request.of(spec).empty:
            out.add(name)
    return out


def plan_groups(todo: list[str], deps: Mapping[str, list[str]], costs: Mapping[str, float],
                fusable: set[str], *, bins: int) -> list[list[str]]:
    """Groups of two or more steps of ``todo`` (topological order; ``deps``: upstreams
    among them), each in topological order, ordered by their first step. Every step of a
    group has the upstreams outside it that the group's first step has (a chain's later
    steps have none outside), so submitting the group with its first step is safe, and no
    two groups wait on each other."""
    order = {n: i for i, n in enumerate(todo)}
    dependents: dict[str, int] = {}
    for n in todo:
        for u in set(deps[n]):
            dependents[u] = dependents.get(u, 0) + 1
    units: dict[str, list[str]] = {}  # first step -> the chain it starts
    unit_of: dict[str, str] = {}
    spent: dict[str, float] = {}  # first step -> its chain's recorded time
    for n in todo:
        if n not in fusable:
            continue
        ups = set(deps[n])
        up = next(iter(ups)) if len(ups) == 1 else None
        # ``up`` feeds only ``n``, so it ends its chain: ``n`` extends it
        head = unit_of.get(up) if up is not None and dependents[up] == 1 else None
        if head is not None and spent[head] + costs[n] <= GROUP_S:
            units[head].append(n)
        else:
            head = n
            units[head], spent[head] = [n], 0.0
        unit_of[n] = head
        spent[head] += costs[n]
    by_upstreams: dict[frozenset[str], list[list[str]]] = {}
    for head, members in units.items():
        by_upstreams.setdefault(frozenset(deps[head]), []).append(members)
    groups: list[list[str]] = []
    for siblings in by_upstreams.values():
        groups.extend(_pack(siblings, costs, bins=bins))
    groups = [g for g in groups if len(g) > 1]
    return sorted(groups, key=lambda g: order[g[0]])


def _cost(members: list[str], costs: Mapping[str, float]) -> float:
    return sum(costs[m] for m in members)


def _pack(units: list[list[str]], costs: Mapping[str, float], *, bins: int) -> list[list[str]]:
    """``units`` (independent chains, in order) in ``max(bins, total / GROUP_S)`` groups
    (at most one per unit), each unit to the group with the least recorded time so far;
    a unit never joins a group it would take past ``GROUP_S`` (it gets its own)."""
    total = sum(_cost(u, costs) for u in units)
    n = min(len(units), max(1, bins, math.ceil(total / GROUP_S)))
    packed: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(n)]
    extra: list[list[str]] = []
    for unit in units:
        c = _cost(unit, costs)
        i = min(range(n), key=lambda k: packed[k][0])
        if packed[i][1] and packed[i][0] + c > GROUP_S:
            extra.append(unit)
            continue
        packed[i] = (packed[i][0] + c, packed[i][1] + unit)
    return [members for _, members in packed if members] + extra
