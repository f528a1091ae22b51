"""The step context of a worker process, and progress reports from inside a step.

A pipeline step runs in a Ray worker; the runtime installs a :class:`StepContext` there
for the step's duration (``bind``). Code running inside the step -- a trainer's fit
controller, a Tuner's trial loop -- calls :func:`publish` with a short progress text
("epoch 3/10 loss=0.41", "trial 2/4 done"). The text goes to Ray's internal key-value
store under the run and step, where the driver reads it for its live table and its
stall watchdog (a step that reports progress is not stuck). Outside a step (a plain
script, a unit test) ``publish`` does nothing.

This module is the lowest layer (``air``): the runtime and the trainers both use it,
neither imports the other.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from airflowdsl.air import raydata

#: Ray internal-KV namespace of progress records.
NAMESPACE = "airflowdsl-progress"


@dataclass(frozen=True)
class StepContext:
    """Which run and step this worker process is executing, where its log goes, and how
    long a wait for resources may last inside it (None: no limit)."""

    run_id: str
    step: str
    log_path: str | None = None
    pending_timeout: float | None = 60.0
    #: the step's effective cache key, once its task knows it (``scope``)
    cache_key: str | None = None
    #: whether the task may reuse stored work under that key (False: forced,
    #: ``cache=False``, persistence off, inputs not known)
    reuse: bool = False
    store: str | None = None  # the artifact store's root (for gc; trainer storage)
    #: how the step opens a URI store (``ArtifactStore.options``): trainer storage under
    #: it is opened with them (``air.storage.options_for``)
    store_options: tuple[tuple[str, str], ...] = ()


_current: StepContext | None = None
_records: dict[str, list[dict[str, Any]]] = {}


def bind(ctx: StepContext | None) -> StepContext | None:
    """Install ``ctx`` as this process's step context (forgetting any records of the
    previous step); returns the previous context. Binding a step also sizes Ray Data's
    default block count to the cluster (``air.raydata``)."""
    global _current
    previous, _current = _current, ctx
    _records.clear()
    if ctx is not None:
        raydata.size_for_cluster()
    return previous


def record(kind: str, row: dict[str, Any]) -> None:
    """Keep ``row`` (JSON-able values) as a record of the current step, e.g. kind
    ``"report"`` for each training report, ``"trial"`` for each Tune trial. The records
    return with the step's result and are stored in the run history
    (``History.records``). A no-op outside a step."""
    if _current is not None:
        _records.setdefault(kind, []).append(dict(row))


def take_records() -> dict[str, list[dict[str, Any]]]:
    """The current step's records so far, handed over (the runtime calls this once)."""
    out = {k: list(v) for k, v in _records.items()}
    _records.clear()
    return out


def scope(cache_key: str | None, *, reuse: bool, store: str | None = None,
          store_options: tuple[tuple[str, str], ...] = ()) -> None:
    """Set the current step's cache key (the runtime calls this once the task knows its
    effective key, after any upstream re-ran), keeping its records. A no-op outside a
    step."""
    global _current
    c = _current
    if c is not None:  # (``dataclasses.replace`` costs ~4x as much, per step)
        _current = StepContext(c.run_id, c.step, log_path=c.log_path,
                               pending_timeout=c.pending_timeout, cache_key=cache_key,
                               reuse=reuse, store=store, store_options=store_options)


#: marker file in a trainer folder scoped to a pipeline step (``trainer_dir``), JSON:
#: ``{"key", "run_id", "step", "store"}``; ``airflowdsl cache gc`` reads it
TRAINER_MARKER = ".airflowdsl-step.json"


def trainer_dir(storage: str, name: str) -> str:
    """Where a fit named ``name`` keeps its checkpoints under ``storage``.

    Outside a pipeline step: ``storage/name``, so a rerun with the same
    ``RunConfig(name=...)`` resumes from its checkpoints. Inside a step the folder is
    scoped to the step's cache key, ``storage/name/key-<key[:16]>``: a rerun of the same
    key (a step that failed or was killed midway) still resumes, but a cache miss
    (another key: new data, params or code) starts fresh instead of adopting the
    checkpoints of a different computation. Where the step may not reuse stored work
    (forced, ``cache=False``, persistence off) it is private to the run:
    ``storage/name/run-<run id>-<step>``. The folder holds ``TRAINER_MARKER`` so that
    ``airflowdsl cache gc`` can collect it once the key's result is stored. A URI
    ``storage`` gives a URI (nothing is made: the ranks upload into it).
    """
    ctx = _current
    if "://" in storage:
        if ctx is None:
            return f"{storage.rstrip('/')}/{name}"
        return f"{storage.rstrip('/')}/{name}/{_leaf(ctx)}"
    if ctx is None:
        return os.path.join(storage, name)
    path = os.path.join(storage, name, _leaf(ctx))
    os.makedirs(path, exist_ok=True)
    marker = os.path.join(path, TRAINER_MARKER)
    if not os.path.exists(marker):
        with open(marker, "w", encoding="utf-8") as f:
            json.dump({"key": ctx.cache_key, "run_id": ctx.run_id, "step": ctx.step,
                       "store": ctx.store}, f)
    return path


def _leaf(ctx: StepContext) -> str:
    return (f"key-{ctx.cache_key[:16]}" if ctx.cache_key and ctx.reuse
            else f"run-{ctx.run_id}-{ctx.step}".replace(os.sep, "_").replace("/", "_"))


def current() -> StepContext | None:
    """The step this process is running, or None outside a pipeline step."""
    return _current


def key(run_id: str, step: str) -> bytes:
    return f"{run_id}/{step}".encode()


def publish(text: str) -> None:
    """Report progress of the current step (a no-op outside a step or without Ray)."""
    ctx = _current
    if ctx is None:
        return
    try:
        from ray.experimental import internal_kv

        record = json.dumps({"text": text[:200], "time": time.time()})
        internal_kv._internal_kv_put(key(ctx.run_id, ctx.step), record.encode(),
                                     overwrite=True, namespace=NAMESPACE)
    except Exception:  # noqa: BLE001 - progress is informative; never fail a step for it
        return


def read(run_id: str, step: str) -> tuple[str, float] | None:
    """The latest ``(text, time)`` a running step published (driver side), or None."""
    try:
        from ray.experimental import internal_kv

        raw = internal_kv._internal_kv_get(key(run_id, step), namespace=NAMESPACE)
    except Exception:  # noqa: BLE001 - Ray not connected
        return None
    if not raw:
        return None
    record = json.loads(raw)
    return str(record["text"]), float(record["time"])


def read_run(run_id: str) -> dict[str, tuple[str, float]]:
    """Every step of ``run_id`` that published progress: ``{step: (text, time)}`` (one
    key listing, then one read per publishing step; driver side)."""
    try:
        from ray.experimental import internal_kv

        keys = internal_kv._internal_kv_list(f"{run_id}/".encode(), namespace=NAMESPACE)
    except Exception:  # noqa: BLE001 - Ray not connected
        return {}
    out: dict[str, tuple[str, float]] = {}
    for raw_key in keys:
        step = raw_key.decode().split("/", 1)[1]
        got = read(run_id, step)
        if got is not None:
            out[step] = got
    return out


def clear(run_id: str) -> None:
    """Forget a finished run's progress records (driver side): one prefix delete in Ray's
    internal KV, one round trip to its GCS however many steps (or their trainer actors,
    Tune trials) published (a key listing, then a delete per record, cost 1 + N)."""
    try:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(key(run_id, ""), del_by_prefix=True, namespace=NAMESPACE)
    except Exception:  # noqa: BLE001 - Ray already gone
        return


__all__ = ["NAMESPACE", "TRAINER_MARKER", "StepContext", "bind", "clear", "current", "publish",
           "read", "read_run", "record", "scope", "take_records", "trainer_dir"]
