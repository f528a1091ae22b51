"""The body of a step's Ray task: gather inputs, call the user function, persist.

The task persists its own outputs (artifacts never travel through the
driver) and returns ``(*outputs, summary)``: one object ref per output for
downstream steps, plus a small summary (timings, manifest, metrics) for the
driver. A Dataset output is written as Parquet and handed downstream as a
``read_parquet`` Dataset over the stored files, exactly what a cache hit
gives; with persistence off it is materialized instead.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pickle
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from airflowdsl.air import progress, workerlog
from airflowdsl.air.progress import StepContext
from airflowdsl.errors import GroupFailed, StepFailed
from airflowdsl.runtime import cutoff, serializers, summaries
from airflowdsl.runtime.outputcheck import OutputCheck, wrong_output
from airflowdsl.runtime.runlog import LogUpload
from airflowdsl.runtime.store import ArtifactStore, Manifest, hand_on, resolve

_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Stored:
    """An input read from the store inside the task (a cache hit upstream)."""

    manifest: Manifest
    index: int | None
    multi: bool


@dataclass(frozen=True)
class Payload:
    name: str
    fn: bytes  # the user's function, cloudpickled once per run (``pickle_fn``)
    params: dict[str, Any]
    args: tuple[tuple[str, str, Any], ...]  # (param, "ref" | "refs" | "stored", n / Stored)
    multi_output: bool
    n_outputs: int
    store: ArtifactStore | str | None  # None: persistence off
    key: str
    info: dict[str, Any]
    context: StepContext | None = None  # run/step, log file, resource-wait limit
    cache: Any = None  # runtime.cutoff.CacheCtl: resolve the key, lease, serve if stored
    checks: tuple[OutputCheck, ...] = ()  # checkpoint outputs: the declared class (outputcheck)


_SIMPLE = (int, float, str, bool, type(None), bytes)


def dump_payload(p: Payload) -> bytes:
    """The task argument, pickled here: plain ``pickle`` when the params are scalars,
    cloudpickle otherwise (user classes from modules shipped by value). Measured with
    bench/step_overhead.py: the 50-way fan-out ran at 1.22-1.56x bare Ray with it and
    1.60-1.85x with Ray cloudpickling the dataclass (driver CPU alone did not move)."""
    if all(type(v) in _SIMPLE for v in p.params.values()):
        return pickle.dumps(p, protocol=pickle.HIGHEST_PROTOCOL)
    import ray.cloudpickle as cp

    return cp.dumps(p)


def user_traceback(exc: BaseException, *, keep_all: bool = False) -> str:
    """The traceback without airflowdsl-runtime and Ray frames (unless ``keep_all``)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if keep_all or (
        not f.filename.startswith(_HERE) and f"{os.sep}ray{os.sep}" not in f.filename)]
    return "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + \
        "".join(traceback.format_exception_only(type(exc), exc))


def pickle_fn(fn: Any, cache: dict[int, bytes]) -> bytes:
    """``fn`` pickled once per run (a 50-step chain of one function pickles it once)."""
    blob = cache.get(id(fn))
    if blob is None:
        import ray.cloudpickle as cp

        blob = cache[id(fn)] = cp.dumps(fn)
    return blob


_FNS: dict[bytes, Any] = {}


def _unpickle_fn(blob: bytes) -> Any:
    """Each worker unpickles a given function once (bounded cache)."""
    fn = _FNS.get(blob)
    if fn is None:
        import ray.cloudpickle as cp

        if len(_FNS) >= 256:
            _FNS.clear()
        fn = _FNS[blob] = cp.loads(blob)
    return fn


def _gather(p: Payload, values: tuple[Any, ...]) -> dict[str, Any]:
    kwargs = dict(p.params)
    store = ArtifactStore.of(p.store) if p.store else None
    pos = 0
    for param, how, extra in p.args:
        if how == "ref":
            kwargs[param] = resolve(values[pos])
            pos += 1
        elif how == "refs":
            kwargs[param] = tuple(resolve(v) for v in values[pos:pos + extra])
            pos += extra
        else:
            assert store is not None
            s: Stored = extra
            idx = range(len(s.manifest["outputs"])) if s.index is None else [s.index]
            loaded = [store.load(s.manifest, i, verify=False) for i in idx]
            kwargs[param] = tuple(loaded) if s.index is None and s.multi else loaded[0]
    return kwargs


def metrics_of(outputs: tuple[Any, ...]) -> dict[str, float]:
    """Metrics a step reports: a returned ``dict`` of numbers, or a ``Result``'s ``.metrics``."""
    if len(outputs) != 1:
        return {}
    value = outputs[0]
    found = getattr(value, "metrics", None) if not isinstance(value, dict) else value
    if not isinstance(found, dict):
        return {}
    return {str(k): float(v) for k, v in found.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


@contextmanager
def step_context(ctx: StepContext | None) -> Iterator[None]:
    """Bind ``ctx`` for the step (``air.progress``) and send this process's stdout and
    stderr (file descriptors 1 and 2: Python, C libraries, Ray Data's logging) to the
    step's log file while it runs."""
    if ctx is None:
        yield
        return
    previous = progress.bind(ctx)
    saved: tuple[int, int] | None = None
    if ctx.log_path:
        try:
            fd = _open_log(ctx.log_path)
            sys.stdout.flush()
            sys.stderr.flush()
            saved = _save_output()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        except OSError:  # an unwritable log folder must not fail the step
            saved = None
    try:
        yield
    finally:
        progress.bind(previous)
        if saved is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            _restore_output(saved)


#: this process's own stdout and stderr, duplicated once: a step sends fds 1 and 2 to
#: its log and puts these back (a worker runs one step at a time; system calls are not
#: cheap here: a forced 50-step run makes ~1,000 fewer)
_OWN: list[tuple[int, int]] = []
_DEPTH = [0]


def _save_output() -> tuple[int, int]:
    if _DEPTH[0] == 0:
        if not _OWN:
            _OWN.append((os.dup(1), os.dup(2)))
        saved = _OWN[0]
    else:  # a step context inside another one (same process): put back the outer log
        saved = (os.dup(1), os.dup(2))
    _DEPTH[0] += 1
    return saved


def _restore_output(saved: tuple[int, int]) -> None:
    _DEPTH[0] -= 1
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    if _DEPTH[0] > 0:
        os.close(saved[0])
        os.close(saved[1])


def _open_log(path: str) -> int:
    """The log file opened for appending (its folder made on first use)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o644)


def run_step(blob: bytes, *values: Any) -> tuple[Any, ...]:
    p: Payload = pickle.loads(blob)
    ctx, log = step_log(p)
    try:  # checkpoint copies loaded for the step are removed when it ends (not its outputs)
        with step_context(ctx), workerlog.bound(log), serializers.private_copies() as copies, \
                cutoff.claim(p, values) as claim:
            if claim.hit is not None:  # stored meanwhile, or an upstream re-ran identically
                out = claim.served()
                out = (*hand_on(claim.store, claim.hit[1], out[:-1]), out[-1])
            else:
                out = _run_step(p, values, claim)
            copies.keep(out)
        return out
    finally:
        if log is not None and log.upload is not None:  # a spooled log: into the store
            log.upload(log.path)


@dataclass(frozen=True)
class Local:
    """In a group's wiring: return ``index`` of the group's step ``member`` (-1: its
    summary), passed inside the task instead of through Ray (``run_group``)."""

    member: int
    index: int


def run_group(names: tuple[str, ...], blobs: tuple[bytes, ...],
              wiring: tuple[tuple[Any, ...], ...], *values: Any) -> tuple[Any, ...]:
    """Run a group's steps in order in this task (``runtime.fusion``); return every step's
    ``(*outputs, summary)``, one after the other. ``wiring[j]`` gives step ``j``'s task
    arguments: an index into ``values``, or a :class:`Local` return of an earlier step,
    which it gets as it would through Ray (``_copy``: a copy, its arrays read-only). A step
    whose upstream in the group failed is not run; the others run on; then the first
    failure is raised as :class:`GroupFailed` with the summaries of those that finished."""
    results: list[tuple[Any, ...] | None] = []  # None: failed, or not run
    failure: StepFailed | None = None
    for name, blob, sources in zip(names, blobs, wiring, strict=True):
        args = _member_args(sources, values, results)
        out = None
        if args is not None:  # else an upstream in the group failed: not run
            try:
                out = run_step(blob, *args)
            except StepFailed as exc:
                failure = failure or exc
            except Exception as exc:  # noqa: BLE001 - a step's failure, reported as its own
                failure = failure or StepFailed(name, f"{type(exc).__name__}: {exc}",
                                                user_traceback(exc, keep_all=True))
        results.append(out)
    if failure is not None:
        done = {n: out[-1] for n, out in zip(names, results, strict=True) if out is not None}
        raise GroupFailed(failure.step, failure.error, failure.user_traceback, done)
    return tuple(v for out in results if out is not None for v in out)


def _member_args(sources: tuple[Any, ...], values: tuple[Any, ...],
                 results: list[tuple[Any, ...] | None]) -> list[Any] | None:
    """A group step's task arguments (``run_group``); None when an upstream in the group
    failed."""
    args = []
    for src in sources:
        if not isinstance(src, Local):
            args.append(values[src])
            continue
        out = results[src.member]
        if out is None:
            return None
        args.append(out[src.index] if src.index == -1 else _copy(out[src.index]))
    return args


def _copy(value: Any) -> Any:
    """``value`` as the next step would get it through Ray: pickled and read back, its
    large buffers (numpy arrays) shared read-only instead of copied, as from Ray's object
    store (cloudpickle, what Ray itself uses, where plain pickle cannot)."""
    try:
        return _round_trip(pickle, value)
    except Exception:  # noqa: BLE001 - lambdas, classes of modules shipped by value
        import ray.cloudpickle as cp

        return _round_trip(cp, value)


def _round_trip(pickler: Any, value: Any) -> Any:
    buffers: list[pickle.PickleBuffer] = []
    data = pickler.dumps(value, protocol=5, buffer_callback=buffers.append)
    return pickle.loads(data, buffers=[memoryview(b).toreadonly() for b in buffers])


def step_log(p: Payload) -> tuple[StepContext | None, workerlog.StepLog | None]:
    """The step's context and log: on a URI store the log is spooled in this node's temp
    folder (uploaded when the step ends), and workers on other nodes upload their own."""
    ctx = p.context
    if ctx is None or not ctx.log_path:
        return ctx, None
    st = ArtifactStore.of(p.store) if p.store else None
    if st is None or not st.is_remote:
        return ctx, workerlog.StepLog(ctx.run_id, ctx.step, ctx.log_path)
    path = os.path.join(workerlog.spool_dir(ctx.run_id), f"{ctx.step}.log")
    return (dataclasses.replace(ctx, log_path=path),
            workerlog.StepLog(ctx.run_id, ctx.step, path, node=_node_id(),
                              upload=LogUpload(st, ctx.run_id)))


def _run_step(p: Payload, values: tuple[Any, ...], claim: cutoff.Claim) -> tuple[Any, ...]:
    started = time.time()
    try:
        result = _unpickle_fn(p.fn)(**_gather(p, values))
    except Exception as exc:
        raise StepFailed(p.name, f"{type(exc).__name__}: {exc}", user_traceback(exc)) from None
    outputs = tuple(result) if p.multi_output else (result,)
    if len(outputs) != p.n_outputs:
        raise StepFailed(p.name, f"returned {len(outputs)} values, expected {p.n_outputs}", "")
    if p.checks and (wrong := wrong_output(p.checks, outputs)) is not None:
        raise StepFailed(p.name, wrong, "")
    metrics = metrics_of(outputs)
    manifest, beside = None, False
    try:
        if p.store:
            store = ArtifactStore.of(p.store)
            pending = store.prepare(claim.digest, outputs, **p.info, **claim.manifest_info(),
                                    metrics=metrics)
            manifest = pending.manifest  # checksums and content hashes known: not written yet
            stored = None if claim.repair or len(pending.files) != len(outputs) else \
                cutoff.same_stored(store, manifest)  # in-memory formats: nothing written yet
            if stored is not None:  # these very bytes are committed under this key
                manifest = stored
            else:
                beside = _commit_beside(pending, p, claim)
                if not beside:
                    pending.commit()
            outputs = tuple(store.load(manifest, i, verify=False) if serializers.from_store(v)
                            else v for i, v in enumerate(outputs))
            outputs = hand_on(store, manifest, outputs)  # remote: checkpoints by reference
        else:
            outputs = tuple(v.materialize() if serializers.is_dataset(v) else v for v in outputs)
    except Exception as exc:
        raise StepFailed(p.name, f"storing its output failed: {type(exc).__name__}: {exc}",
                         user_traceback(exc, keep_all=True)) from None
    summary: dict[str, Any] = {
        "started": started, "ended": time.time(), "manifest": manifest, "metrics": metrics,
               "records": progress.take_records(),
               "pid": cutoff.pid(), "inputs": claim.contents}
    if beside:
        summary["commit"] = _node_id()
    return (*outputs, summaries.pack(summary))


# --- writes beside the consumers ------------------------------------------------------

#: Writes of at least this many bytes also hold an object reference while they run, so
#: Ray does not stop the worker as idle meanwhile (a worker owning references refuses to
#: exit); smaller ones take ~0.5 ms, far below Ray's 1 s idle threshold.
GUARD_BYTES = 1 << 20

#: Ray internal-KV namespace where a worker reports a failed write beside the consumers
#: (key ``<run>/<step>``, the message as value). A committed write is its manifest.
COMMITS = "airflowdsl-commits"

_WRITER: Any = None


@functools.cache
def _node_id() -> str:
    """This worker's Ray node (once per process: the runtime context is not cheap)."""
    import ray

    return str(ray.get_runtime_context().get_node_id())


def _commit_beside(pending: Any, p: Payload, claim: cutoff.Claim) -> bool:
    """Commit ``pending`` in this worker's writer thread, while the task's return values
    already go to the consumers; False where it cannot (an object-store root, no run
    context, no Ray): then the caller commits now. The manifest -- every checksum and
    content hash -- is already in the task's summary, so consumers resolve their keys at
    once; the driver waits for the manifests before the run reports success
    (``scheduler.await_commits``). The thread holds the key's lease until the manifest is
    written; a failure is reported in Ray's KV (``COMMITS``)."""
    if not pending.store.is_local or p.context is None or "ray" not in sys.modules:
        return False
    import ray

    if not ray.is_initialized():
        return False
    global _WRITER
    if _WRITER is None:
        from concurrent.futures import ThreadPoolExecutor

        _WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airflowdsl-writer")
    lease = claim.hand_over()
    keep_alive = [ray.put(None)] if pending.nbytes >= GUARD_BYTES else []
    where = f"{p.context.run_id}/{p.name}"

    def commit() -> None:
        try:
            pending.commit()
        except BaseException as exc:  # noqa: BLE001 - reported to the driver
            from ray.experimental import internal_kv

            internal_kv._internal_kv_put(where.encode(), f"{type(exc).__name__}: {exc}".encode(),
                                         namespace=COMMITS)
        finally:
            if lease is not None:
                lease.release()
            keep_alive.clear()

    _WRITER.submit(commit)
    return True
