"""``execute(compiled, ...)``: plan from the cache, run the rest on Ray, record history."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from airflowdsl.runtime import raycluster, scheduler
from airflowdsl.runtime.fingerprint import project_modules
from airflowdsl.runtime.history import History, new_run_id
from airflowdsl.runtime.planner import StepPlan, make_plan, output_refs
from airflowdsl.runtime.run import Run, StepRun
from airflowdsl.runtime.store import ArtifactStore
from airflowdsl.runtime.tasks import StepFailed

Listener = Callable[[str, str, StepRun], None]

#: Finished steps are written to the run history at most this often (and at the end of
#: the run, and at once on a failure). A commit per step cost ~0.4 ms of driver time in
#: a 50-step chain; artifacts never depend on it (they are committed by their task).
HISTORY_FLUSH_S = 0.25


def execute(compiled: Any, *, store: str | os.PathLike[str] | None = None, force: bool = False,
            from_step: str | None = None, only: Iterable[str] | str | None = None,
            persist: bool = True, on_event: Listener | None = None) -> Run:
    """Run ``compiled`` on Ray with caching; return the finished :class:`Run`.

    ``persist=False`` neither reads nor writes the artifact store (every step
    runs, outputs stay in Ray's object store); the run is still recorded.
    ``on_event(run_id, step, step_run)`` is called on every status change.
    """
    st = ArtifactStore.open(store)
    history = History.shared(st.root)
    run_id, started = new_run_id(), time.time()
    plans = make_plan(compiled, st, force=force, from_step=from_step, only=only, persist=persist)
    history.start_run(run_id, compiled.name, dict(compiled.params), st.root, started)
    steps = {n: StepRun(n, p.spec.kind, cache_key=p.key.digest, reason=p.reason)
             for n, p in plans.items()}

    unrecorded: dict[str, None] = {}  # ordered set of finished steps not yet in history
    last_flush = [time.monotonic()]

    def flush() -> None:
        if unrecorded:
            history.record_steps(run_id, [(steps[n], plans[n].key.components())
                                          for n in unrecorded])
            unrecorded.clear()
        last_flush[0] = time.monotonic()

    def emit(name: str, status: str, data: dict[str, Any], *, record: bool = True) -> None:
        _apply(steps[name], status, data, st)
        if record and status != "running":
            unrecorded[name] = None  # one transaction per HISTORY_FLUSH_S, not per step
            if status == "failed" or time.monotonic() - last_flush[0] >= HISTORY_FLUSH_S:
                flush()
        if on_event:
            on_event(run_id, name, steps[name])

    for name, plan in plans.items():  # cache hits and skips: one history transaction
        if plan.action == "cached":
            emit(name, "cached", {"manifest": plan.manifest}, record=False)
        elif plan.action == "skip":
            emit(name, "skipped", {}, record=False)
        elif on_event:
            on_event(run_id, name, steps[name])
    history.record_steps(run_id, [(steps[n], p.key.components()) for n, p in plans.items()
                                  if p.action != "run"])
    refs: dict[str, list[Any]] = {}
    try:
        if any(p.action == "run" for p in plans.values()):
            refs = _run_on_ray(compiled, plans, st if persist else None, run_id, emit)
    except BaseException as exc:
        flush()
        history.finish_run(run_id, "failed", time.time(), f"interrupted: {exc!r}")
        raise
    flush()
    failed = next((s for s in steps.values() if s.status == "failed"), None)
    status = "failed" if failed else "succeeded"
    error = f"step {failed.name!r} failed: {failed.error}" if failed else None
    ended = time.time()
    history.finish_run(run_id, status, ended, error, failed.traceback if failed else None)
    loader = _loader(plans, refs, st)
    return Run(run_id, compiled.name, status, dict(compiled.params), steps, st.root, started,
               ended, error, failed.traceback if failed else None,
               _output_loader=(lambda: _outputs(compiled.outputs, loader)) if not failed else None,
               _step_loader=loader)


def _run_on_ray(compiled: Any, plans: dict[str, StepPlan], st: ArtifactStore | None,
                run_id: str, emit: scheduler.Event) -> dict[str, list[Any]]:
    raycluster.ensure_ray()
    modules: set[str] = set()
    for p in plans.values():
        if p.action == "run":
            modules |= project_modules(p.spec.fn)
    raycluster.ship_by_value(modules)
    info = {"pipeline": compiled.name, "run_id": run_id}
    limit, ready, heavy = raycluster.max_in_flight()
    return scheduler.run(plans, store=st.root if st else None, info=info, emit=emit,
                         limit=limit, run_slots=ready, heavy_slots=heavy,
                         slots=raycluster.step_slots(ready))


def _apply(step: StepRun, status: str, data: dict[str, Any], st: ArtifactStore) -> None:
    now = time.time()
    if status == "cached":
        step.status, step.cached, step.started, step.ended = "succeeded", True, now, now
    else:
        step.status = status
    manifest = data.get("manifest")
    if manifest:
        step.artifacts = st.artifact_paths(manifest)
        step.metrics = dict(manifest.get("metrics") or {})
    if status == "succeeded":
        step.started, step.ended = data["started"], data["ended"]
        step.metrics = dict(data.get("metrics") or step.metrics)
    exc = data.get("exception")
    if isinstance(exc, StepFailed):
        step.error, step.traceback, step.ended = exc.error, exc.user_traceback, now
    elif exc is not None:
        step.error, step.ended = f"{type(exc).__name__}: {exc}", now


def _loader(plans: dict[str, StepPlan], refs: dict[str, list[Any]], st: ArtifactStore
            ) -> Callable[[str, int | None], Any]:
    def load(step: str, index: int | None = None) -> Any:
        plan = plans[step]
        if step in refs:
            import ray

            values = ray.get(refs[step][:-1])
        else:
            manifest = st.manifest(plan.key.digest)
            if manifest is None:
                raise LookupError(f"step {step!r} has no stored output in {st.root}")
            values = [st.load(manifest, i) for i in range(len(manifest["outputs"]))]
        if index is not None:
            return values[index]
        return tuple(values) if plan.spec.multi_output else values[0]

    return load


def _outputs(outputs: Any, load: Callable[[str, int | None], Any]) -> Any:
    refs, single = output_refs(outputs)
    values = tuple(load(node, index) for node, index in refs)
    return (values[0] if values else None) if single else values
