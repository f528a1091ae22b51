"""Submit the steps that must run as Ray tasks and collect their results.

Steps are submitted ahead of time in topological order (at most ``limit`` in
flight): their inputs are the object refs of upstream tasks (Ray starts a
step when they are ready) or stored artifacts (loaded inside the task). When
a step fails, nothing more is submitted, the submitted steps still waiting on
an unfinished upstream are cancelled before they start, and steps already
running finish and are stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflowdsl.runtime.planner import StepPlan
from airflowdsl.runtime.raycluster import step_task
from airflowdsl.runtime.tasks import Payload, StepFailed, Stored

Event = Callable[[str, str, dict[str, Any]], None]

#: Steps whose nested work (training actor groups, trials and their dataset
#: ingestion) is sized against the whole cluster. Two at once on a small
#: cluster starve each other's data ingestion for good (measured on 2 CPUs:
#: two trainers' streaming splits each held a Ray Data budget of 0.5 CPU, too
#: little for one 1-CPU read task), so they get ``heavy_slots`` at a time.
HEAVY_KINDS = frozenset({"train", "tune"})


def _args(plan: StepPlan, plans: dict[str, StepPlan], refs: dict[str, list[Any]]
          ) -> tuple[tuple[tuple[str, str, Any], ...], list[Any]]:
    args: list[tuple[str, str, Any]] = []
    values: list[Any] = []
    for param, (up, idx) in plan.inputs.items():
        if up in refs:
            outs = refs[up][:-1]
            if idx is None and plans[up].spec.multi_output:
                args.append((param, "refs", len(outs)))
                values.extend(outs)
            else:
                args.append((param, "ref", None))
                values.append(outs[idx or 0])
        else:
            stored = Stored(plans[up].manifest or {}, idx, plans[up].spec.multi_output)
            args.append((param, "stored", stored))
    return tuple(args), values


def _submit(name: str, plans: dict[str, StepPlan], refs: dict[str, list[Any]],
            store: str | None, info: dict[str, Any]) -> Any:
    plan = plans[name]
    args, values = _args(plan, plans, refs)
    payload = Payload(name, plan.spec.fn, plan.params, args, plan.spec.multi_output,
                      plan.n_outputs, store, plan.key.digest, {**info, "step": name})
    refs[name] = list(step_task(plan.spec, plan.n_outputs + 1).remote(payload, *values))
    return refs[name][-1]


def _next(todo: list[str], plans: dict[str, StepPlan], upstream: dict[str, list[str]],
          refs: dict[str, list[Any]], heavy_ok: bool, ready_ok: bool, finished: set[str]
          ) -> str | None:
    """The first step whose upstream is submitted (and, for train/tune, a slot is free;
    for a step that could start at once, a run slot is free)."""
    for i, name in enumerate(todo):
        if any(u not in refs for u in upstream[name]):
            continue
        if not ready_ok and all(u in finished for u in upstream[name]):
            continue
        if plans[name].spec.kind in HEAVY_KINDS and not heavy_ok:
            continue
        return todo.pop(i)
    return None


def run(plans: dict[str, StepPlan], *, store: str | None, info: dict[str, Any], emit: Event,
        limit: int, run_slots: int = 2, heavy_slots: int = 1) -> dict[str, list[Any]]:
    """Submit (topological order; at most ``limit`` in flight, of which at most
    ``run_slots`` with all inputs ready and ``heavy_slots`` train/tune steps) and wait for every step that must run; ``emit(name, status,
    data)`` on each change. Returns the refs."""
    import ray

    todo = [n for n, p in plans.items() if p.action == "run"]
    refs: dict[str, list[Any]] = {}
    pending: dict[Any, str] = {}
    upstream = {n: [u for u, _ in plans[n].inputs.values() if u in todo] for n in todo}
    finished: set[str] = set()
    failed = False
    while todo or pending:
        while len(pending) < limit and not failed:
            heavy = sum(plans[n].spec.kind in HEAVY_KINDS for n in pending.values())
            ready = sum(all(u in finished for u in upstream[n]) for n in pending.values())
            name = _next(todo, plans, upstream, refs, heavy < heavy_slots, ready < run_slots,
                         finished)
            if name is None:
                break
            pending[_submit(name, plans, refs, store, info)] = name
            if all(u in finished for u in upstream[name]):
                emit(name, "running", {})
        if failed:
            for name in todo:
                emit(name, "skipped", {})
            todo = []
        if not pending:
            break
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            name = pending.pop(ref)
            try:
                summary = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - classified below
                err = _cause(exc)
                own = not isinstance(err, StepFailed) or err.step == name
                emit(name, "failed" if own else "skipped", {"exception": err})
                failed = True
                continue
            finished.add(name)
            emit(name, "succeeded", summary)
            for n, ups in upstream.items():
                if n in pending.values() and name in ups and all(u in finished for u in ups):
                    emit(n, "running", {})
        if failed:
            for ref, n in list(pending.items()):
                if any(u not in finished for u in upstream[n]):
                    ray.cancel(ref, force=False)
                    pending.pop(ref)
                    emit(n, "skipped", {})
    return refs


def _cause(exc: BaseException) -> BaseException:
    import ray.exceptions

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return exc
