"""``execute(compiled, ...)``: plan from the cache, run the rest on Ray, record history."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflowdsl.air.resources import DEFAULT_PENDING_TIMEOUT_S
from airflowdsl.runtime.contracts import CompiledGraph, PipelineOutputs
from airflowdsl.runtime.history import History, new_run_id
from airflowdsl.runtime.planner import StepPlan, make_plan, output_refs
from airflowdsl.runtime.run import Run, StepRun
from airflowdsl.runtime.rungraph import write_run_graph
from airflowdsl.runtime.store import ArtifactStore, resolve

if TYPE_CHECKING:  # the Ray-only modules are imported in _run_on_ray: a fully cached
    from airflowdsl.runtime import scheduler  # rerun never imports them (nor Ray)

Listener = Callable[[str, str, StepRun], None]

#: Finished steps are written to the run history at most this often (and at the end of
#: the run, and at once on a failure). A commit per step cost ~0.4 ms of driver time in
#: a 50-step chain; artifacts never depend on it (they are committed by their task).
HISTORY_FLUSH_S = 0.25

#: How long the end of a run waits for its progress records to be deleted from Ray's
#: internal KV (``_clear_progress``) before it returns anyway, with a warning.
PROGRESS_CLEAR_S = 10.0


def execute(compiled: CompiledGraph, *, store: str | os.PathLike[str] | None = None,
            force: bool = False, from_step: str | None = None,
            only: Iterable[str] | str | None = None, persist: bool = True,
            on_event: Listener | None = None, run_id: str | None = None,
            pending_timeout: float | None = DEFAULT_PENDING_TIMEOUT_S,
            echo_worker_output: bool = True) -> Run:
    """Run ``compiled`` on Ray with caching; return the finished :class:`Run`.

    Args:
        persist: False neither reads nor writes the artifact store (every step runs,
            outputs stay in Ray's object store); the run is still recorded.
        on_event: ``on_event(run_id, step, step_run)`` on every status change (and on
            progress reports of running steps: ``step_run.progress``).
        run_id: the id to record the run under (default: a new one).
        pending_timeout: seconds Ray work started by a step may wait for resources with
            no progress before the step is failed (None: no limit); see docs/runtime.md.
        echo_worker_output: print the output of Ray workers (other than the steps' own,
            which always goes to the run's log files) on this process's terminal too;
            the CLI turns it off unless ``-v``. See ``runtime.runlog``.

    Returns the :class:`Run`; ``status`` is ``succeeded``, ``failed`` or ``cancelled``
    (Ctrl-C: the first SIGINT cancels the running steps, a second one exits at once).

    Raises:
        ResourceError: a step asks for more than the cluster can ever give (nothing ran).
    """
    st = ArtifactStore.open(store)
    history = History.shared(st.root, st.options)
    run_id, started = run_id or new_run_id(), time.time()
    plans = make_plan(compiled, st, force=force, from_step=from_step, only=only, persist=persist)
    history.start_run(run_id, compiled.name, dict(compiled.params), st.root, started)
    write_run_graph(st.root, run_id, compiled)  # the DAG for readers (airflowdsl ui)
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
        if _resolve_key(plans, name, data):
            steps[name].cache_key = plans[name].key.digest
        _apply(steps[name], status, data, st)
        if record and status not in ("running", "progress"):
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
    done: list[tuple[StepRun, dict[str, Any] | None]] = [
        (steps[n], p.key.components()) for n, p in plans.items() if p.action != "run"]
    if done:  # a forced rerun has none: no empty transaction
        history.record_steps(run_id, done)
    refs: dict[str, list[Any]] = {}
    cancelled = False
    waits: list[Callable[[], None]] = []  # work the run started that ends before it returns
    try:
        if any(p.action == "run" for p in plans.values()):
            from airflowdsl.runtime import scheduler

            control = scheduler.Control()
            # a finished step reaches the history within HISTORY_FLUSH_S even while a
            # long step runs on (live views read the history)
            control.tick = lambda: flush() if unrecorded and \
                time.monotonic() - last_flush[0] >= HISTORY_FLUSH_S else None
            costs = _step_times(history, compiled.name, st, persist)
            with _sigint_cancels(control):
                if not _on_warm_driver(compiled, plans, st if persist else None, run_id, emit,
                                       control, pending_timeout, echo_worker_output, costs):
                    refs = _run_on_ray(compiled, plans, st if persist else None, run_id, emit,
                                       control, pending_timeout, echo_worker_output, waits,
                                       costs)
            cancelled = control.cancelled
    except BaseException as exc:
        flush()
        status = "failed"
        if isinstance(exc, KeyboardInterrupt):
            status = "cancelled"
        history.finish_run(run_id, status, time.time(), f"interrupted: {exc!r}")
        for wait in waits:
            wait()
        raise
    flush()
    failed = next((s for s in steps.values() if s.status == "failed"), None)
    status = "failed" if failed else "cancelled" if cancelled else "succeeded"
    error = f"step {failed.name!r} failed: {failed.error}" if failed else \
        "cancelled (Ctrl-C)" if cancelled else None
    ended = time.time()
    history.finish_run(run_id, status, ended, error, failed.traceback if failed else None)
    for wait in waits:
        wait()
    loader = _loader(plans, refs, st)
    ok = status == "succeeded"
    return Run(run_id, compiled.name, status, dict(compiled.params), steps, st.root, started,
               ended, error, failed.traceback if failed else None,
               _output_loader=(lambda: _outputs(compiled.outputs, loader)) if ok else None,
               _step_loader=loader)


@contextmanager
def _sigint_cancels(control: scheduler.Control) -> Iterator[None]:
    """While steps run: the first SIGINT asks the scheduler to cancel them (it records the
    run as cancelled and returns); a second one exits the process at once (code 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    import signal  # steps run: not imported by a fully cached run

    def handler(signum: int, frame: Any) -> None:
        if control.cancelled:
            os._exit(130)
        control.cancelled = True
        print("\nairflowdsl: cancelling the running steps (Ctrl-C again to exit at once)",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _resolve_key(plans: dict[str, StepPlan], name: str, data: dict[str, Any]) -> bool:
    """Re-key a step with the content hashes its task resolved its inputs to
    (``runtime.cutoff``); whether it had any."""
    if not data.get("inputs"):
        return False
    plans[name].key = plans[name].key.resolve(data["inputs"])
    return True


def _on_warm_driver(compiled: CompiledGraph, plans: dict[str, StepPlan],
                    st: ArtifactStore | None, run_id: str, emit: scheduler.Event,
                    control: scheduler.Control, pending_timeout: float | None, echo: bool,
                    costs: dict[str, float]) -> bool:
    """Run the steps in the warm head's driver process (``runtime.warmdriver``) when there
    is one that takes them; False when this process is to drive them. Only runs that
    persist (their outputs load from the store afterwards), in the main thread of a
    process not already on Ray."""
    from airflowdsl.runtime import warmdriver, warmray

    if st is None or not warmdriver.enabled() or os.environ.get("RAY_ADDRESS") or \
            not warmray.enabled() or threading.current_thread() is not threading.main_thread():
        return False
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return False
    head = warmray.usable_head()
    if head is None:
        return False
    payload = (compiled, plans, st, run_id, pending_timeout, echo, costs)
    return warmdriver.run(head, _drive, payload, emit=emit, control=control,
                          by_value=_modules(plans))


def _drive(payload: tuple[Any, ...], send: scheduler.Event, control: scheduler.Control) -> None:
    """The warm driver's side of ``_on_warm_driver``: the steps on Ray, each event sent to
    the run's process (which records it)."""
    compiled, plans, st, run_id, pending_timeout, echo, costs = payload

    def emit(name: str, status: str, data: dict[str, Any]) -> None:
        _resolve_key(plans, name, data)
        send(name, status, data)

    waits: list[Callable[[], None]] = []
    try:
        _run_on_ray(compiled, plans, st, run_id, emit, control, pending_timeout, echo, waits,
                    costs)
    finally:
        for wait in waits:
            wait()


def _run_on_ray(compiled: CompiledGraph, plans: dict[str, StepPlan], st: ArtifactStore | None,
                run_id: str, emit: scheduler.Event, control: scheduler.Control,
                pending_timeout: float | None, echo: bool, waits: list[Callable[[], None]],
                costs: dict[str, float]) -> dict[str, list[Any]]:
    from airflowdsl.air import progress
    from airflowdsl.air.progress import StepContext
    from airflowdsl.runtime import scheduler
    from airflowdsl.runtime.raycluster import RayCluster, ship_by_value
    from airflowdsl.runtime.resources import Request, check_feasible
    from airflowdsl.runtime.runlog import capture_worker_output, run_log_dir, spool_dir, upload_logs
    from airflowdsl.runtime.watchdog import StallMonitor

    cluster = RayCluster.current()
    cluster.connect(quiet=not echo)
    if control.cancelled:
        return {}
    check_feasible({n: Request.of(p.spec) for n, p in plans.items() if p.action == "run"},
                   cluster.view())
    if st is not None:
        st.check_cluster(len(cluster.view().nodes))  # a local disk on several nodes: refused
    ship_by_value(_modules(plans))
    info = {"pipeline": compiled.name, "run_id": run_id}
    logs = run_log_dir(st.root if st else ArtifactStore.open(None).root, run_id)
    remote = st is not None and logs is None  # logs spooled locally, then moved to the store
    logs = logs or spool_dir(run_id)
    contexts = {n: StepContext(run_id, n, os.path.join(logs, f"{n}.log") if logs else None,
                               pending_timeout) for n in plans}
    control.monitor = StallMonitor(pending_timeout)
    control.progress = lambda: progress.read_run(run_id)
    try:
        with capture_worker_output(os.path.join(logs, "ray.log") if logs else None, echo=echo):
            return scheduler.run(plans, store=st, info=info, emit=emit, cluster=cluster,
                                 control=control, contexts=contexts, costs=costs)
    finally:
        waits.append(_clear_progress(run_id))
        if remote:
            upload_logs(st, run_id, [os.path.join(logs, f) for f in _listdir(logs)])


def _step_times(history: Any, pipeline: str, st: ArtifactStore, persist: bool
                ) -> dict[str, float]:
    """Each step's last recorded time, by which cheap steps share a Ray task
    (``runtime.fusion``, where it may: one query, 0.36 ms over 300 runs of 52 steps)."""
    from airflowdsl.runtime import fusion

    times = getattr(history, "step_times", None)
    if times is None or not fusion.allowed(st if persist else None):
        return {}
    return dict(times(pipeline))


def _clear_progress(run_id: str) -> Callable[[], None]:
    """Start deleting the progress records of ``run_id`` (``air.progress.clear``: one round
    trip to Ray's GCS, 0.3-0.8 ms at the end of a run) on this process's background
    thread, while the driver writes the run's last history rows; returns the wait for it,
    which ``execute`` makes before it returns, so a run's records never outlive it
    (bounded on a long-lived Ray)."""
    from airflowdsl.air import progress

    done = _background(progress.clear, run_id)

    def wait() -> None:
        if not done.wait(PROGRESS_CLEAR_S):
            warnings.warn(f"airflowdsl: Ray's GCS did not delete the progress records of run "
                          f"{run_id} within {PROGRESS_CLEAR_S:.0f} s; they are deleted when it "
                          f"answers (namespace {progress.NAMESPACE!r} of Ray's internal KV)",
                          RuntimeWarning, stacklevel=3)

    return wait


_jobs: tuple[int, queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                           threading.Event]]] | None = None


def _background(fn: Callable[..., Any], *args: Any) -> threading.Event:
    """Call ``fn(*args)`` on this process's one daemon thread (made on first use, again in
    a forked child; a new thread per run cost ~0.3 ms to start); the event is set when the
    call returned or raised (what it raised is dropped: ``fn`` reports its own errors)."""
    global _jobs
    if _jobs is None or _jobs[0] != os.getpid():
        _jobs = (os.getpid(), queue.SimpleQueue())
        threading.Thread(target=_serve, args=(_jobs[1],), daemon=True,
                         name="airflowdsl-background").start()
    done = threading.Event()
    _jobs[1].put((fn, args, done))
    return done


def _serve(jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                         threading.Event]]) -> None:
    while True:
        fn, args, done = jobs.get()
        try:
            fn(*args)
        except Exception:  # noqa: BLE001, S110 - the thread serves the next call regardless
            pass
        finally:
            done.set()


def _modules(plans: dict[str, StepPlan]) -> set[str]:
    """The project-local modules of the functions of the steps that run: from the
    fingerprints planning made (the code their keys hash; walking it again cost ~0.5 ms
    per run in the 52-step fan-out), else found here. Once per function."""
    from airflowdsl.runtime.codescan import module_is_local
    from airflowdsl.runtime.fingerprint import project_modules

    modules: set[str] = set()
    seen: set[int] = set()
    for p in plans.values():
        if p.action != "run" or id(p.spec.fn) in seen:
            continue
        seen.add(id(p.spec.fn))
        if p.fingerprint is not None:
            modules.update(m for m in p.fingerprint.modules if module_is_local(m))
        else:
            modules |= project_modules(p.spec.fn)
    return modules


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _apply(step: StepRun, status: str, data: dict[str, Any], st: ArtifactStore) -> None:
    now = time.time()
    if status == "progress":
        step.progress = str(data.get("text", ""))
        return
    if status == "cached":
        step.status, step.cached, step.started, step.ended = "succeeded", True, now, now
    else:
        step.status = status
    if status == "running":
        step.started = now  # the driver's view; the task's own start replaces it at the end
    elif status == "cancelled" and step.started is not None:
        step.ended = now
    manifest = data.get("manifest")
    if manifest:
        step.artifacts = st.artifact_paths(manifest)
        step.metrics = dict(manifest.get("metrics") or {})
    if status == "succeeded":
        step.started, step.ended = data["started"], data["ended"]
        step.records = dict(data.get("records") or {})
        step.metrics = dict(data.get("metrics") or step.metrics)
        if data.get("served"):  # the task found its key stored (runtime.cutoff)
            step.cached, step.reason = True, str(data["served"])
    exc = data.get("exception")
    if exc is None:
        return
    from airflowdsl.runtime.tasks import StepFailed

    if isinstance(exc, StepFailed):
        step.error, step.traceback, step.ended = exc.error, exc.user_traceback, now
    else:
        step.error, step.ended = f"{type(exc).__name__}: {exc}", now


def _loader(plans: dict[str, StepPlan], refs: dict[str, list[Any]], st: ArtifactStore
            ) -> Callable[[str, int | None], Any]:
    def load(step: str, index: int | None = None) -> Any:
        plan = plans[step]
        if step in refs:
            import ray

            values = [resolve(v) for v in ray.get(refs[step][:-1])]
        else:
            manifest = st.manifest(plan.key.digest)
            if manifest is None:
                raise LookupError(f"step {step!r} has no stored output in {st.root}")
            if any(o.get("format") == "dataset" for o in manifest["outputs"]):
                # connect as a run does (the warm head when one runs): read_parquet's own
                # ray.init() would start another local Ray
                from airflowdsl.runtime.raycluster import RayCluster

                RayCluster.current().connect(quiet=True)
            values = [st.load(manifest, i) for i in range(len(manifest["outputs"]))]
        if index is not None:
            return values[index]
        return tuple(values) if plan.spec.multi_output else values[0]

    return load


def _outputs(outputs: PipelineOutputs, load: Callable[[str, int | None], Any]) -> Any:
    refs, single = output_refs(outputs)
    values = tuple(load(node, index) for node, index in refs)
    return (values[0] if values else None) if single else values
