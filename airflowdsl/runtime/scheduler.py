"""Submit the steps that must run as Ray tasks and collect their results.

Steps are submitted ahead of time in topological order (see ``_pick``): their
inputs are the object refs of upstream tasks (Ray starts a step when they are
ready) or stored artifacts (loaded inside the task). When
a step fails, nothing more is submitted, the submitted steps still waiting on
an unfinished upstream are cancelled before they start, and steps already
running finish and are stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflowdsl.runtime.planner import StepPlan
from airflowdsl.runtime.raycluster import step_task
from airflowdsl.runtime.tasks import Payload, StepFailed, Stored, dump_payload, pickle_fn

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
            store: str | None, info: dict[str, Any], fns: dict[int, bytes],
            gate: str | None, slots: Any) -> Any:
    plan = plans[name]
    args, values = _args(plan, plans, refs)
    if gate is not None:  # an extra argument the task ignores: it starts after ``gate``
        values.append(refs[gate][-1])
    payload = Payload(name, pickle_fn(plan.spec.fn, fns), plan.params, args,
                      plan.spec.multi_output, plan.n_outputs, store, plan.key.digest,
                      {**info, "step": name})
    task = step_task(plan.spec, plan.n_outputs + 1, slots)
    refs[name] = list(task.remote(dump_payload(payload), *values))
    return refs[name][-1]


def _pick(todo: list[str], plans: dict[str, StepPlan], deps: dict[str, list[str]],
          refs: dict[str, list[Any]], inflight: list[str], finished: set[str],
          run_slots: int, heavy_slots: int, ready_slots: int | None = None
          ) -> tuple[str | None, str | None]:
    """The next step to submit and the running step to queue it behind (or None).

    At most ``run_slots`` submitted steps may be ready to start and at most ``run_slots``
    wait on an unfinished step. Waiting steps start the moment what they wait on
    finishes, in Ray, without a round trip through the driver: a chain runs as fast as
    plain Ray tasks. A ready step finding every run slot taken waits behind the running
    step with the fewest waiters (a lane), so a fan-out runs as ``run_slots`` chains:
    zero-CPU step tasks each take a worker process, so more at once would spawn workers.
    ``ready_slots`` (default ``run_slots``) bounds the ready steps instead when Ray
    bounds them itself (step slots, see ``run``).
    """
    ready = [n for n in inflight if all(u in finished for u in deps[n])]
    waiting = len(inflight) - len(ready)
    heavy = sum(plans[n].spec.kind in HEAVY_KINDS for n in inflight)
    for i, name in enumerate(todo):
        if any(u not in refs for u in deps[name]):
            continue
        if plans[name].spec.kind in HEAVY_KINDS and heavy >= heavy_slots:
            continue
        is_ready = all(u in finished for u in deps[name])
        if is_ready and len(ready) < (ready_slots or run_slots):
            return todo.pop(i), None
        if waiting >= run_slots:
            continue
        if not is_ready:
            return todo.pop(i), None
        gate = min(ready, key=lambda g: sum(g in deps[n] for n in inflight))
        return todo.pop(i), gate
    return None, None


def run(plans: dict[str, StepPlan], *, store: str | None, info: dict[str, Any], emit: Event,
        limit: int, run_slots: int = 2, heavy_slots: int = 1,
        slots: Any = None) -> dict[str, list[Any]]:
    """Submit the steps that must run (topological order; at most ``limit`` in flight,
    at most ``heavy_slots`` train/tune steps) and wait for them; ``emit(name, status,
    data)`` on each change. Returns the refs. With ``slots`` (``raycluster.step_slots``)
    Ray bounds how many ready default steps run at once; without, ``_pick`` does (lanes)."""
    import ray

    todo = [n for n, p in plans.items() if p.action == "run"]
    refs: dict[str, list[Any]] = {}
    pending: dict[Any, str] = {}
    deps = {n: [u for u, _ in plans[n].inputs.values() if u in todo] for n in todo}
    finished: set[str] = set()
    fns: dict[int, bytes] = {}
    failed = False
    while todo or pending:
        while len(pending) < limit and not failed:
            name, gate = _pick(todo, plans, deps, refs, list(pending.values()), finished,
                               run_slots, heavy_slots, limit if slots is not None else None)
            if name is None:
                break
            if gate is not None:
                deps[name] = [*deps[name], gate]
            ready = all(u in finished for u in deps[name])
            # Ready steps go to the step slots (Ray runs ``run_slots`` of them at once and
            # queues the rest on the same workers: a fan-out at bare-Ray speed). Steps
            # submitted ahead to wait on a running upstream stay plain zero-CPU tasks:
            # there are at most ``run_slots`` of them, and a slotted task waiting on a
            # dependency is slower to start (measured: a chain 1.7x bare Ray, 1.4x plain).
            pending[_submit(name, plans, refs, store, info, fns, gate,
                            slots if ready else None)] = name
            if ready:
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
            for n in pending.values():
                if name in deps[n] and all(u in finished for u in deps[n]):
                    emit(n, "running", {})
        if failed:
            for ref, n in list(pending.items()):
                if any(u not in finished for u in deps[n]):
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
