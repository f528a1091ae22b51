"""Submit the steps that must run as Ray tasks and collect their results.

Steps are submitted in topological order, all at once unless no step-slot group could
be placed (then ahead boundedly, see ``_pick``): their inputs are the object refs of
upstream tasks (Ray starts a step when they are ready) or stored artifacts (loaded
inside the task). Cheap steps that ran before share a task (``runtime.fusion``): a group
goes with its first step. When a step fails, nothing more is submitted, the submitted
steps still waiting on an unfinished upstream are cancelled before they start, and steps
already running finish and are stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from airflowdsl.air.progress import StepContext
from airflowdsl.errors import StalledError
from airflowdsl.runtime import fusion, summaries, warmray
from airflowdsl.runtime.outputcheck import checkpoint_checks
from airflowdsl.runtime.planner import StepPlan
from airflowdsl.runtime.raycluster import RayCluster
from airflowdsl.runtime.resources import Request
from airflowdsl.runtime.tasks import Local, Payload, StepFailed, Stored, dump_payload, pickle_fn
from airflowdsl.runtime.watchdog import Stall

if TYPE_CHECKING:
    from airflowdsl.runtime.store import ArtifactStore

Event = Callable[[str, str, dict[str, Any]], None]
Admit = Callable[[str, Collection[str]], bool]

#: How long the driver waits for a step to finish before it looks at Ctrl-C, the
#: watchdog and progress again.
POLL_S = 0.25

#: How often the driver reads the progress running steps publish (``air.progress``).
PROGRESS_S = 1.0


class Control:
    """The scheduler's collaborators for one run: a cancel flag (Ctrl-C), the stall
    monitor, and a progress reader (``() -> {step: (text, time)}`` of the steps that
    published progress)."""

    def __init__(self, *, monitor: Any = None,
                 progress: Callable[[], dict[str, tuple[str, float]]] | None = None) -> None:
        self.cancelled = False
        self.monitor = monitor
        self.progress = progress
        #: called on every pass of the scheduler's loop (``POLL_S``): the executor
        #: flushes finished steps to the history when one is due
        self.tick: Callable[[], None] | None = None
        self._seen: dict[str, float] = {}
        self._last = time.monotonic()

    def progress_updates(self, running: list[str]) -> tuple[dict[str, str], tuple[Any, ...]]:
        """New progress texts of running steps (read at most once per ``PROGRESS_S``),
        and the progress signature the stall monitor compares."""
        updates: dict[str, str] = {}
        now = time.monotonic()
        if self.progress is not None and running and now - self._last >= PROGRESS_S:
            self._last = now
            for name, (text, stamp) in self.progress().items():
                if name in running and stamp != self._seen.get(name):
                    self._seen[name] = stamp
                    updates[name] = text
        return updates, tuple(sorted(self._seen.items()))

    def stall(self, running: dict[str, Request], signature: tuple[Any, ...]) -> Stall | None:
        return self.monitor.poll(running, signature) if self.monitor is not None else None


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


def _prepare(name: str, plans: dict[str, StepPlan], refs: dict[str, list[Any]],
             store: ArtifactStore | str | None, info: dict[str, Any], fns: dict[int, bytes],
             gate: str | None, context: StepContext | None) -> tuple[bytes, list[Any]]:
    """The step's pickled payload and its task's arguments after it."""
    plan = plans[name]
    args, values = _args(plan, plans, refs)
    ctl = plan.ctl() if store else None  # the task resolves pending inputs from summaries
    if ctl is not None:
        values.extend(refs[u][-1] for u in ctl.upstreams)
    if gate is not None:  # an extra argument the task ignores: it starts after ``gate``
        values.append(refs[gate][-1])
    payload = Payload(name, pickle_fn(plan.spec.fn, fns), plan.params, args,
                      plan.spec.multi_output, plan.n_outputs, store, plan.key.digest,
                      {**info, "step": name}, context, cache=ctl,
                      checks=checkpoint_checks(plan.spec.output_types))
    return dump_payload(payload), values


def _submit(name: str, plans: dict[str, StepPlan], refs: dict[str, list[Any]],
            store: ArtifactStore | str | None, info: dict[str, Any], fns: dict[int, bytes],
            gate: str | None, slots: Any, cluster: RayCluster,
            context: StepContext | None) -> Any:
    plan = plans[name]
    blob, values = _prepare(name, plans, refs, store, info, fns, gate, context)
    task = cluster.step_task(plan.spec, plan.n_outputs + 1, slots)
    refs[name] = list(task.remote(blob, *values))
    return refs[name][-1]


def _submit_group(members: list[str], plans: dict[str, StepPlan], refs: dict[str, list[Any]],
                  store: ArtifactStore | str | None, info: dict[str, Any],
                  fns: dict[int, bytes], slots: Any, cluster: RayCluster,
                  contexts: dict[str, StepContext]) -> None:
    """Submit ``members`` (a group, ``runtime.fusion``) as one task; ``refs`` gets each
    step's refs. Inputs from inside the group are wired as :class:`Local` returns."""
    for j, m in enumerate(members):
        refs[m] = [*(Local(j, i) for i in range(plans[m].n_outputs)), Local(j, -1)]
    blobs: list[bytes] = []
    wiring: list[tuple[Any, ...]] = []
    values: list[Any] = []  # the group task's arguments from outside the group
    for m in members:
        blob, vals = _prepare(m, plans, refs, store, info, fns, None, contexts.get(m))
        sources: list[Any] = []
        for v in vals:
            if not isinstance(v, Local):
                values.append(v)
                v = len(values) - 1
            sources.append(v)
        blobs.append(blob)
        wiring.append(tuple(sources))
    n_returns = sum(plans[m].n_outputs + 1 for m in members)
    task = cluster.step_task(plans[members[0]].spec, n_returns, slots, group=len(members))
    out = list(task.remote(tuple(members), tuple(blobs), tuple(wiring), *values))
    for m in members:
        refs[m], out = out[:plans[m].n_outputs + 1], out[plans[m].n_outputs + 1:]


def chain_cover(todo: list[str], deps: dict[str, list[str]]) -> int:
    """How many chains cover ``todo`` (topological order; ``deps``: upstreams among
    them), built greedily: each step extends the chain of one of its upstreams that
    still ends there, else starts one. No two steps of a chain can run at once, so this
    bounds how many can (Dilworth): 1 for a chain, 50 for a 50-way fan-out."""
    ends: set[str] = set()
    chains = 0
    for name in todo:
        up = next((u for u in deps[name] if u in ends), None)
        if up is None:
            chains += 1
        else:
            ends.discard(up)
        ends.add(name)
    return chains


def _next_admitted(todo: list[str], deps: dict[str, list[str]], refs: dict[str, list[Any]],
                   admit: Admit, inflight: Collection[str]) -> str | None:
    """The first step of ``todo`` whose upstreams are submitted and that the resource model
    admits (with step slots: no lanes, no look-ahead bound)."""
    for i, name in enumerate(todo):
        if all(u in refs for u in deps[name]) and admit(name, inflight):
            return todo.pop(i)
    return None


def _pick(todo: list[str], plans: dict[str, StepPlan], deps: dict[str, list[str]],
          refs: dict[str, list[Any]], inflight: list[str], finished: set[str],
          run_slots: int, admit: Admit | None = None) -> tuple[str | None, str | None]:
    """The next step to submit and the running step to queue it behind (or None).

    At most ``run_slots`` submitted steps may be ready to start and at most ``run_slots``
    wait on an unfinished step. Waiting steps start the moment what they wait on
    finishes, in Ray, without a round trip through the driver: a chain runs as fast as
    plain Ray tasks. A ready step finding every run slot taken waits behind the running
    step with the fewest waiters (a lane), so a fan-out runs as ``run_slots`` chains
    (used only where no step-slot group could be placed; with slots Ray bounds the steps
    and ``_next_admitted`` submits them all). ``admit(name, inflight)`` is the resource
    model's admission rule for steps that hold CPUs (``resources.admits``).
    """
    ready = [n for n in inflight if all(u in finished for u in deps[n])]
    waiting = len(inflight) - len(ready)
    for i, name in enumerate(todo):
        if any(u not in refs for u in deps[name]):
            continue
        if admit is not None and not admit(name, inflight):
            continue
        is_ready = all(u in finished for u in deps[name])
        if is_ready and len(ready) < run_slots:
            return todo.pop(i), None
        if waiting >= run_slots:
            continue
        if not is_ready:
            return todo.pop(i), None
        gate = min(ready, key=lambda g: sum(g in deps[n] for n in inflight))
        return todo.pop(i), gate
    return None, None


def run(plans: dict[str, StepPlan], *, store: ArtifactStore | str | None, info: dict[str, Any], emit: Event,
        cluster: RayCluster, control: Control | None = None,
        contexts: dict[str, StepContext] | None = None,
        costs: Mapping[str, float] | None = None) -> dict[str, list[Any]]:
    """Submit the steps that must run (topological order; bounds from ``cluster.bounds``;
    CPU-holding steps only as the resource model admits them) and wait for them;
    ``emit(name, status, data)`` on each change (``progress`` carries ``{"text": ...}``).
    Steps that ask for nothing run in the step slots (``cluster.step_slots``) where more
    of them than slots could run at once, so Ray bounds them; if no group can be placed,
    ``_pick`` queues them in lanes. ``control`` brings Ctrl-C (``cancelled``), the stall
    watchdog and progress. ``costs``: each step's last recorded time, by which cheap
    steps share a task (``runtime.fusion``; only where all steps go at once). Returns
    the refs."""
    import ray

    from airflowdsl.runtime.resources import admits

    control = control or Control()
    limit, run_slots = cluster.bounds()
    view = cluster.view()
    todo = [n for n, p in plans.items() if p.action == "run"]
    to_run = set(todo)
    deps = {n: [u for u, _ in plans[n].inputs.values() if u in to_run] for n in todo}
    # Slots only where more steps than slots could run at once: Ray cannot start more
    # workers than that anyway, placing the group costs ~0.3 s (an edit-one-step rerun),
    # and a slot task starts later after its input (a 50-step chain: 1.61 vs 1.78 ms
    # between steps). Narrow graphs and slot tasks are submitted all at once (Ray starts
    # each when its inputs are there; CPU-holding steps as ``admit`` says).
    narrow = chain_cover(todo, deps) <= run_slots
    slots = None if narrow else cluster.step_slots(run_slots)
    eager = narrow or slots is not None
    groups: dict[str, list[str]] = {}  # first step -> the group's steps (runtime.fusion)
    if eager:  # else no group could be placed: ``_pick`` bounds the steps itself (lanes)
        limit = len(todo)
        if costs:
            cheap = fusion.fusable(plans, todo, costs, store)
            groups = {g[0]: g for g in fusion.plan_groups(todo, deps, costs, cheap,
                                                          bins=run_slots)}
            later = {m for g in groups.values() for m in g[1:]}
            todo = [n for n in todo if n not in later]  # a group goes with its first step
    requests = {n: Request.of(plans[n].spec) for n in to_run}
    refs: dict[str, list[Any]] = {}
    pending: dict[Any, str] = {}
    live: set[str] = set()  # the names in ``pending``
    dependents: dict[str, list[str]] = {}  # upstream -> steps waiting on it (gates too)
    for n, ups in deps.items():
        for u in ups:
            dependents.setdefault(u, []).append(n)
    finished: set[str] = set()
    running: dict[str, Request] = {}
    fns: dict[int, bytes] = {}
    beside: dict[str, tuple[str, int, Any]] = {}  # writes beside: (node, pid, manifest)
    failed = False

    def admit(name: str, inflight: Collection[str]) -> bool:
        if not requests[name].cpus:  # holds no CPU: always admitted (``admits``)
            return True
        held = sum(requests[n].cpus for n in inflight)
        return admits(held, requests[name], view)

    def start(name: str) -> None:
        running[name] = requests[name]
        emit(name, "running", {})

    def stop(names: list[str], status: str, data: dict[str, Any]) -> None:
        for ref, n in list(pending.items()):
            if n in names:
                ray.cancel(ref, force=True)
                live.discard(pending.pop(ref))
                running.pop(n, None)
                emit(n, status, data)

    while todo or pending:
        while len(pending) < limit and not failed and not control.cancelled:
            if eager:  # every step goes now, in order, as far as admitted
                name, gate = _next_admitted(todo, deps, refs, admit, pending.values()), None
            else:
                name, gate = _pick(todo, plans, deps, refs, list(pending.values()), finished,
                                   run_slots, admit)
            if name is None:
                break
            if gate is not None:
                deps[name] = [*deps[name], gate]
                dependents.setdefault(gate, []).append(name)
            # Steps that ask for nothing go to the step slots when there are slots, ready
            # or not: Ray runs ``run_slots`` of them at once and queues the rest on the
            # same workers, starting each the moment its inputs are there.
            if name in groups:
                _submit_group(groups[name], plans, refs, store, info, fns, slots, cluster,
                              contexts or {})
            else:
                _submit(name, plans, refs, store, info, fns, gate, slots, cluster,
                        (contexts or {}).get(name))
            for n in groups.get(name, (name,)):
                pending[refs[n][-1]] = n
                live.add(n)
                if all(u in finished for u in deps[n]):
                    start(n)
        if control.cancelled:
            stop(list(pending.values()), "cancelled", {})
            for name in todo:
                emit(name, "cancelled", {})
            await_commits(beside, str(info.get("run_id")), emit, store, refs,
                          limit_s=CANCEL_COMMIT_S)
            return refs
        if failed:
            for name in todo:
                emit(name, "skipped", {})
            todo = []
        if not pending:
            break
        # with steps left to submit, wake at the first one finished; with all submitted,
        # collect them in halving batches (half of those pending, or POLL_S): a few wakes
        # per run, not one per step (the driver's CPU is the steps' CPU on a small
        # machine), while most summaries are handled before the last step ends (waiting
        # for all of them left their handling after it: chain 1.32-1.34x -> 1.27-1.29x,
        # fan-out 1.73-1.86x -> 1.52-1.55x of plain Ray, two alternated pairs)
        done, _ = ray.wait(list(pending), num_returns=1 if todo else (len(pending) + 1) // 2,
                           timeout=POLL_S)
        try:  # one ray.get for the batch; one per ref when one of them failed
            batch: list[Any] | None = ray.get(done)
        except Exception:  # noqa: BLE001 - each ref raises its own below
            batch = None
        for i, ref in enumerate(done):
            name = pending.pop(ref)
            live.discard(name)
            running.pop(name, None)
            try:
                summary = summaries.unpack(batch[i] if batch is not None else ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - classified below
                err = _cause(exc)
                ended = getattr(err, "done", {}).get(name)  # it finished in a failed group
                if ended is None:
                    own = not isinstance(err, StepFailed) or err.step == name
                    emit(name, "failed" if own else "skipped", {"exception": err})
                    failed = True
                    continue
                summary = summaries.unpack(ended)
            finished.add(name)
            if summary.get("commit"):
                beside[name] = (summary["commit"], summary["pid"], summary["manifest"])
            emit(name, "succeeded", summary)
            for n in dependents.get(name, ()):
                if n in live and n not in running and all(u in finished for u in deps[n]):
                    start(n)
        if control.tick is not None:
            control.tick()
        updates, signature = control.progress_updates(list(running))
        for name, text in updates.items():
            emit(name, "progress", {"text": text})
        stall = control.stall(running, (len(finished), signature))
        if stall is not None:
            stop(list(stall.steps), "failed", {"exception": StalledError(stall.message)})
            failed = True
        if failed:
            for ref, n in list(pending.items()):
                if any(u not in finished for u in deps[n]):
                    ray.cancel(ref, force=False)
                    live.discard(pending.pop(ref))
                    emit(n, "skipped", {})
    await_commits(beside, str(info.get("run_id")), emit, store, refs)
    return refs


#: How long the driver waits for the writes beside the consumers at the end of a run
#: (a worker that died is noticed at once on this node), and after Ctrl-C.
COMMIT_TIMEOUT_S = 600.0
CANCEL_COMMIT_S = 3.0

_BOOK = ("key", "data", "created", "checksum", "outputs", "size")


def await_commits(beside: dict[str, tuple[str, int, Any]], run_id: str, emit: Event,
                  store: ArtifactStore | str | None, refs: dict[str, list[Any]], *,
                  limit_s: float = COMMIT_TIMEOUT_S) -> None:
    """Wait until the manifest of every step in ``beside`` (``name -> (node, pid,
    manifest)``: its write commits beside the consumers, ``tasks``) is in the store: a
    run reports success only once every artifact it produced is stored. A write that
    failed (reported in Ray's KV) fails its step; one whose worker on this node died
    before committing is redone here from the step's outputs in Ray's object store; one
    not committed within ``limit_s`` fails its step, naming the worker it waited for."""
    if not beside or store is None:
        return
    import ray
    from ray.experimental import internal_kv

    from airflowdsl.runtime.store import ArtifactStore
    from airflowdsl.runtime.tasks import COMMITS

    st = ArtifactStore.of(store)
    here = ray.get_runtime_context().get_node_id()
    deadline, pause = time.monotonic() + limit_s, 0.002
    waiting = dict(beside)
    ours: dict[str, set[str]] = {}
    for _, _, m in beside.values():
        ours.setdefault(m["key"], set()).add(m["data"])

    def fail(name: str, why: str) -> None:
        waiting.pop(name, None)
        emit(name, "failed", {"exception": StepFailed(name, why, "")})

    while waiting:
        for name, (node, pid, manifest) in list(waiting.items()):
            if _committed(st, manifest, ours[manifest["key"]]):
                waiting.pop(name)
            elif node == here and not warmray.alive(pid) and not _committed(
                    st, manifest, ours[manifest["key"]]):
                try:  # the writer died with its write: store the outputs from Ray's store
                    values = ray.get(refs[name][:-1], timeout=60)
                    st.write(manifest["key"], values,
                             **{k: v for k, v in manifest.items() if k not in _BOOK})
                    waiting.pop(name)
                except Exception as exc:  # noqa: BLE001 - the step fails with it
                    fail(name, f"its output was not stored: the worker (pid {pid}) writing "
                         f"it exited, and storing it again failed: {exc}")
        if waiting:
            for raw in internal_kv._internal_kv_list(f"{run_id}/".encode(), namespace=COMMITS):
                name = raw[len(run_id) + 1:].decode()
                if name in waiting:
                    why = (internal_kv._internal_kv_get(raw, namespace=COMMITS) or b"").decode()
                    fail(name, f"storing its output failed: {why}")
                internal_kv._internal_kv_del(raw, namespace=COMMITS)
        if waiting and time.monotonic() > deadline:
            for name in list(waiting):
                fail(name, f"its output was not stored within {limit_s:.0f} s (waited for "
                     f"the worker writing it, pid {waiting[name][1]})")
        if waiting:
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def _committed(st: Any, manifest: Any, ours: set[str]) -> bool:
    """Whether the key of ``manifest`` is committed by this run: its manifest names one of
    ``ours`` (the data folders this run wrote for that key: a fan-out of one step writes
    one key many times, and the last manifest wins)."""
    try:
        with open(f"{st.entry(manifest['key'])}/manifest.json", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    if f'"data": "{manifest["data"]}"'.encode() in raw:
        return True
    try:
        return json.loads(raw).get("data") in ours
    except (ValueError, AttributeError):
        return False


def _cause(exc: BaseException) -> BaseException:
    import ray.exceptions

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return exc
