"""A worker's dataset shard: Ray's ``DataIterator``, with a faster ``iter_torch_batches``.

Two fast paths, for numeric columns (numbers, bools, fixed-shape tensors) and no
``collate_fn`` / ``pin_memory``; anything else goes to Ray's implementation unchanged,
and every other attribute is the wrapped iterator's.

- **Local** (``local=True``: the fit controller hands each worker a split of a dataset
  it has already materialized, so the rows cannot change between epochs): the first
  ``iter_torch_batches`` fetches the shard's columns into this process once (whole
  blocks, no re-batching), and every epoch slices them with torch -- no Ray Data
  iterator, prefetch thread or per-batch conversion. In the small DDP job of
  bench/trainer_overhead.py the streaming path below cost ~0.15-0.2 s of a ~0.6 s epoch
  on 2 cores, the local one ~5 ms (bench/RESULTS.md). Shards larger than
  ``AIRFLOWDSL_SHARD_CACHE_MB`` (default 1024; 0 turns the local path off) stream.
- **Streaming** (any other iterator): ``iter_batches(batch_format="numpy")`` plus one
  tensor per column (Ray 2.60's ``iter_torch_batches``: 0.8-0.95 s per 10,000-row epoch,
  this: 0.19 s).

The tensors are copies: a NumPy batch may be a zero-copy view of a Ray object that is
freed once the iterator moves on (docs/training.md, "Zero-copy batches"), and a local
batch must not alias the cached columns (a loop that edits its batch in place would
otherwise change the next epoch's data).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

DEFAULT_CACHE_MB = 1024


def cache_limit_bytes() -> int:
    """The largest shard fetched into a worker for local batching:
    ``$AIRFLOWDSL_SHARD_CACHE_MB`` MiB (default 1024; 0: never)."""
    return int(float(os.environ.get("AIRFLOWDSL_SHARD_CACHE_MB", DEFAULT_CACHE_MB)) * 2**20)


class DatasetShard:
    """``session.get_dataset_shard(...)``: a ``ray.data.DataIterator`` in all but speed."""

    def __init__(self, iterator: Any, *, device: Callable[[], Any] | None = None,
                 local: bool = False) -> None:
        self._iterator = iterator
        self._device = device  # resolves device="auto" (the training device)
        self._numeric: bool | None = None
        self._local = local  # the rows are materialized and small enough to fetch once
        self._columns: dict[str, np.ndarray] | None = None

    @classmethod
    def of_materialized(cls, dataset: Any) -> DatasetShard:
        """The shard of a ``MaterializedDataset`` (a split the fit controller made):
        batched locally when it is at most :func:`cache_limit_bytes` (checked here, in
        the driver, from the blocks' metadata)."""
        size = dataset.size_bytes()
        return cls(dataset.iterator(), local=size is not None and size <= cache_limit_bytes())

    @property
    def ray_iterator(self) -> Any:
        """The wrapped ``ray.data.DataIterator``."""
        return self._iterator

    @property
    def local(self) -> bool:
        """Whether ``iter_torch_batches`` batches a once-fetched copy in this process."""
        return self._local

    def with_device(self, device: Callable[[], Any]) -> DatasetShard:
        """Use ``device()`` for ``device="auto"`` unless a resolver is set already."""
        if self._device is None:
            self._device = device
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_iterator", "_device", "_numeric", "_local",
                                             "_columns"):
            raise AttributeError(name)
        return getattr(self._iterator, name)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_columns": None}  # the fetched copy stays in its process

    def __repr__(self) -> str:
        return f"DatasetShard({self._iterator!r})"

    def iter_torch_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = 256,
                           dtypes: Any = None, device: Any = "auto", collate_fn: Any = None,
                           drop_last: bool = False, local_shuffle_buffer_size: int | None = None,
                           local_shuffle_seed: int | None = None, pin_memory: bool = False
                           ) -> Iterator[dict[str, Any]]:
        """Like Ray's: a dict of tensors per batch, on ``device`` ("auto": the worker's)."""
        common = {"prefetch_batches": prefetch_batches, "batch_size": batch_size,
                  "drop_last": drop_last, "local_shuffle_buffer_size": local_shuffle_buffer_size,
                  "local_shuffle_seed": local_shuffle_seed}
        if collate_fn is not None or pin_memory or batch_size is None or not self._all_numeric():
            return iter(self._iterator.iter_torch_batches(
                dtypes=dtypes, device=device, collate_fn=collate_fn, pin_memory=pin_memory,
                **common))
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive number of rows, got {batch_size}")
        if device == "auto":
            device = self._device() if self._device is not None else None
        if self._local:
            return local_batches(self._fetched(), batch_size=batch_size, drop_last=drop_last,
                                 shuffle_buffer=local_shuffle_buffer_size,
                                 seed=local_shuffle_seed, dtypes=dtypes, device=device)
        return _tensors(self._iterator.iter_batches(batch_format="numpy", **common),
                        dtypes, device)

    def _fetched(self) -> dict[str, np.ndarray]:
        """The shard's columns in this process (fetched on first use, then kept)."""
        if self._columns is None:
            parts = list(self._iterator.iter_batches(batch_size=None, batch_format="numpy"))
            names = list(parts[0]) if parts else []
            # copies: block views may be freed once the iterator is done (module doc)
            self._columns = {n: np.concatenate([p[n] for p in parts]) if len(parts) > 1
                             else np.array(parts[0][n], copy=True) for n in names}
        return self._columns

    def _all_numeric(self) -> bool:
        if self._numeric is None:
            self._numeric = _numeric_schema(self._iterator)
        return self._numeric


def local_batches(columns: dict[str, np.ndarray], *, batch_size: int, drop_last: bool = False,
                  shuffle_buffer: int | None = None, seed: int | None = None,
                  dtypes: Any = None, device: Any = None) -> Iterator[dict[str, Any]]:
    """Batches of ``columns`` as tensors: ``batch_size`` rows each (the last may be
    shorter unless ``drop_last``), in order, or in :func:`buffered_order` when
    ``shuffle_buffer`` is set (``seed``: its generator's seed; None: a fresh one each
    call). Each tensor is a fresh copy, ``dtypes`` applied."""
    import torch

    rows = len(next(iter(columns.values()))) if columns else 0
    src = {name: torch.from_numpy(values) for name, values in columns.items()}
    order = None
    if shuffle_buffer is not None:
        order = torch.from_numpy(buffered_order(rows, shuffle_buffer, batch_size,
                                                np.random.default_rng(seed)))
    stop = rows - rows % batch_size if drop_last else rows
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, rows)
        out = {}
        for name, full in src.items():
            dtype = (dtypes.get(name) if isinstance(dtypes, dict) else dtypes) or full.dtype
            if order is None:
                part = full[start:end].to(dtype=dtype, copy=True)
            else:
                part = full[order[start:end]].to(dtype=dtype)  # indexing copies already
            out[name] = part.to(device) if device is not None else part
        yield out


def buffered_order(rows: int, buffer_rows: int, batch_size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """A local-shuffle order of ``range(rows)``, like Ray's shuffle buffer: rows enter a
    buffer in order and each row that leaves it is drawn at random from at least
    ``max(buffer_rows, batch_size)`` buffered rows (fewer only at the very end). A buffer
    as large as the shard is a full permutation."""
    buffer = max(buffer_rows, batch_size, 1)
    if buffer >= rows:
        return rng.permutation(rows)
    out: list[np.ndarray] = []
    pending = np.empty(0, dtype=np.int64)
    for start in range(0, rows, buffer):  # add `buffer` rows, shuffle, emit all but `buffer`
        pending = np.concatenate([pending, np.arange(start, min(rows, start + buffer))])
        rng.shuffle(pending)
        keep = buffer if start + buffer < rows else 0
        out.append(pending[:len(pending) - keep])
        pending = pending[len(pending) - keep:]
    return np.concatenate(out)


def _numeric_schema(iterator: Any) -> bool:
    """Every column a number, a bool or a fixed-shape tensor of them."""
    import pyarrow as pa

    try:
        types = list(iterator.schema().types)
    except Exception:  # noqa: BLE001 - unknown schema: leave it to Ray
        return False
    for t in types:
        if isinstance(t, pa.ExtensionType):  # Ray's tensor columns
            shape = getattr(t, "shape", None)
            if not shape or any(d is None for d in shape):
                return False
            t = t.storage_type.value_type
            while pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
                t = t.value_type
        if not isinstance(t, pa.DataType) or not (
                pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            return False
    return bool(types)


def _tensors(batches: Any, dtypes: Any, device: Any) -> Iterator[dict[str, Any]]:
    import torch

    for batch in batches:
        out = {}
        for name, values in batch.items():
            dtype = dtypes.get(name) if isinstance(dtypes, dict) else dtypes
            tensor = torch.tensor(values, dtype=dtype)  # a copy (see the module doc)
            out[name] = tensor.to(device) if device is not None else tensor
        yield out


__all__ = ["DEFAULT_CACHE_MB", "DatasetShard", "buffered_order", "cache_limit_bytes",
           "local_batches"]
