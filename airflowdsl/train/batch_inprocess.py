"""BatchPredictor's in-process path: score a materialized Dataset in the calling process.

Starting an actor pool costs seconds (new processes importing the framework and
restoring the model), far more than scoring a few hundred thousand rows with a small
model. So when the whole job is cheap it runs here, with nothing per call that the
job does not need:

- the input's blocks are read straight from the object store (``ray.get`` of the block
  references of the materialized Dataset: zero-copy on this node), not through a
  Ray Data iterator;
- the first ``max(batch_size, PROBE_MIN_ROWS)`` rows are scored as a probe: their time,
  extrapolated to all rows (plus moving the data here at ``PULL_BYTES_PER_S``), decides
  between this process and the pool (``FAST_PATH_BUDGET_S``); when the small probe says
  no, one full slice is measured too (``CostGauge``); what was scored is kept, not
  scored twice;
- the rest is scored in slices of ``IN_PROCESS_ROWS`` rows (a batch only bounds memory
  here; larger model calls cut the per-call overhead);
- the predictions (plus ``keep_columns``) become one pandas block put in the object
  store once (``ray.data.from_blocks``), with the Dataset's result cached so that
  consuming it does not start a streaming executor.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import numpy as np
import pandas as pd

from airflowdsl.train.predictor import Predictor

#: score in this process when the whole job is estimated to take less (seconds)
FAST_PATH_BUDGET_S = 2.0
#: ... and the materialized input is at most this large (bytes)
FAST_PATH_MAX_BYTES = 2 * 2**30
#: rows per model call on the fast path after the probe (at least ``batch_size``)
IN_PROCESS_ROWS = 32768
#: the probe scores at least this many rows (and at least ``batch_size``)
PROBE_MIN_ROWS = 1024
#: assumed speed of moving a materialized dataset into this process (bytes/s)
PULL_BYTES_PER_S = 1e9


def score_frame(predictor: Predictor, batch: pd.DataFrame, *,
                feature_columns: list[str] | None, keep_columns: list[str] | None,
                predict_kwargs: dict[str, Any]) -> pd.DataFrame:
    """One pandas batch: preprocessor, feature columns, model, kept columns."""
    prepared = predictor.preprocess(batch)
    if feature_columns and list(prepared.columns) != list(feature_columns):
        prepared = prepared[feature_columns]
    out = predictor.predict_frame(prepared, **predict_kwargs)
    for col in keep_columns or []:
        out[col] = batch[col].to_numpy()
    return out


def block_frames(data: Any) -> Generator[pd.DataFrame, None, None]:
    """A materialized Dataset's blocks as pandas frames, in order, fetched one at a time
    from the object store (a bundle's block slices are honoured)."""
    import ray
    from ray.data.block import BlockAccessor

    for bundle in data.iter_internal_ref_bundles():
        refs = bundle.block_refs
        slices = getattr(bundle, "slices", None) or [None] * len(refs)
        for ref, part in zip(refs, slices, strict=True):
            block = BlockAccessor.for_block(ray.get(ref))
            if part is not None:
                block = BlockAccessor.for_block(
                    block.slice(part.start_offset, part.end_offset, copy=False))
            frame = block.to_pandas()
            if len(frame):
                yield frame


class CostGauge:
    """Decides, slice by slice, whether the whole job fits ``FAST_PATH_BUDGET_S`` here:
    True (yes: stop measuring), False (no: use the pool), None (measure one more,
    larger slice). The estimate is the time so far plus the latest slice's time per row
    for the rows left, plus moving the data here (``pull_s``); a small first slice
    overstates the time per row (fixed per-call costs), so when it says no, one full
    slice is measured too, unless even that slice would cost half the budget."""

    def __init__(self, rows: int, *, pull_s: float, step: int) -> None:
        self.rows, self.pull_s, self.step = rows, pull_s, step
        self.done = 0
        self.started = time.perf_counter()

    def after(self, n: int, took: float) -> bool | None:
        self.done += n
        elapsed = time.perf_counter() - self.started
        per_row = took / max(n, 1)
        left = max(self.rows - self.done, 0)
        if left == 0 or elapsed + per_row * left + self.pull_s < FAST_PATH_BUDGET_S:
            return True  # (all rows scored already: keep them)
        if self.pull_s >= FAST_PATH_BUDGET_S:
            return False
        if n >= self.step or elapsed + per_row * min(self.step, left) >= FAST_PATH_BUDGET_S / 2:
            return False
        return None


def score_in_process(data: Any, predictor: Predictor, *, batch_size: int,
                     options: dict[str, Any], force: bool) -> pd.DataFrame | None:
    """Predictions (plus kept columns) for every row of the materialized ``data``, or
    None when the measured cost says the whole job would take ``FAST_PATH_BUDGET_S`` or
    more (``force``: never None). The slices scored while measuring are kept."""
    size = data.size_bytes() or 0
    if not force and size > FAST_PATH_MAX_BYTES:
        return None
    step = max(int(batch_size), IN_PROCESS_ROWS)
    gauge = None if force else CostGauge(data.count(), pull_s=size / PULL_BYTES_PER_S,
                                         step=step)
    parts: list[pd.DataFrame] = []
    frames = block_frames(data)
    for frame in frames:
        start = 0
        while start < len(frame):
            n = step if parts else max(int(batch_size), PROBE_MIN_ROWS)  # the first: a probe
            piece = frame if start == 0 and len(frame) <= n else frame.iloc[start:start + n]
            began = time.perf_counter()
            parts.append(score_frame(predictor, piece, **options))
            start += len(piece)
            if gauge is not None:
                verdict = gauge.after(len(piece), time.perf_counter() - began)
                if verdict is False:
                    frames.close()
                    return None
                if verdict:
                    gauge = None
    if not parts:  # no rows: the model's output columns from an empty batch
        return score_frame(predictor, data.to_pandas(), **options)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def as_dataset(frame: pd.DataFrame) -> Any:
    """``frame`` as a materialized Ray Dataset, as cheaply as Ray Data allows: one pandas
    block put in the object store, and the Dataset's result cached so that its first
    consumption does not start a streaming executor (``prime_materialized``). Columns of
    arrays (multi-output models) go through ``ray.data.from_pandas`` for its
    tensor-column casting."""
    import ray.data

    if any(pd.api.types.is_object_dtype(frame[c]) and len(frame)
           and isinstance(frame[c].iloc[0], (np.ndarray, list)) for c in frame.columns):
        return ray.data.from_pandas(frame)
    out = ray.data.from_blocks([frame])
    prime_materialized(out)
    return out


def prime_materialized(ds: Any) -> str:
    """Fill the result cache of ``ds``, a Dataset over in-memory blocks
    (``from_blocks``/``from_pandas``), as ``Dataset._execute`` does for such a source,
    without that method's two cluster-wide queries (free CPUs for a warning, spilled
    bytes for its stats: ~12 ms and a new gRPC channel per call, more than scoring
    200k rows with a small model). Returns how: ``"filled"``; ``"executed"`` (Ray's
    internals differ from what this expects: Ray's own ``_execute``, same result);
    ``"lazy"`` (neither exists: filled on first use)."""
    try:
        from ray.data._internal.execution.interfaces import RefBundle
        from ray.data.dataset import _take_first_non_empty_schema

        dag = ds._logical_plan.dag
        bundles = dag.output_data()
        cache = ds._cache
        if cache.get_bundle(dag) is not None:
            return "filled"
        if not bundles:
            raise LookupError("not a Dataset over in-memory blocks")
        schema = _take_first_non_empty_schema(b.schema for b in bundles)
        bundle = RefBundle(tuple(entry for b in bundles for entry in b.blocks),
                           owns_blocks=all(b.owns_blocks for b in bundles), schema=schema)
        stats = ds._initial_stats()
        stats.dataset_uuid = ds._uuid
        cache.set_bundle(dag, bundle)
        cache.set_stats(stats)
        return "filled"
    except (AttributeError, ImportError, LookupError, TypeError):
        execute = getattr(ds, "_execute", None)
        if callable(execute):
            execute()
            return "executed"
        return "lazy"


__all__ = ["FAST_PATH_BUDGET_S", "CostGauge", "FAST_PATH_MAX_BYTES", "IN_PROCESS_ROWS", "PROBE_MIN_ROWS",
           "PULL_BYTES_PER_S", "as_dataset",
           "prime_materialized", "block_frames", "score_frame", "score_in_process"]
