"""Local batching of a materialized shard (air/shard.py), without Ray: an iterator double
that serves whole blocks the way ``iter_batches(batch_size=None, batch_format="numpy")`` does."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

torch = pytest.importorskip("torch")

from airflowdsl.air.shard import DatasetShard, buffered_order, local_batches  # noqa: E402


class Blocks:
    """Two blocks of 7 and 5 rows; counts how often the data is fetched."""

    def __init__(self) -> None:
        self.fetches = 0
        x = np.arange(12, dtype=np.float64)
        self.blocks = [{"x": x[:7], "n": np.arange(7), "img": np.ones((7, 2, 2), np.float32)},
                       {"x": x[7:], "n": np.arange(7, 12), "img": np.ones((5, 2, 2), np.float32)}]

    def schema(self) -> pa.Schema:
        return pa.schema([("x", pa.float64()), ("n", pa.int64()), ("img", pa.float32())])

    def iter_batches(self, **kwargs: Any) -> Iterator[dict[str, np.ndarray]]:
        assert kwargs == {"batch_size": None, "batch_format": "numpy"}, kwargs
        self.fetches += 1
        return iter(self.blocks)


def test_local_shard_fetches_once_and_batches_across_blocks() -> None:
    blocks = Blocks()
    shard = DatasetShard(blocks, local=True)
    for _ in range(3):
        batches = list(shard.iter_torch_batches(batch_size=5, dtypes={"x": torch.float32}))
        assert [len(b["n"]) for b in batches] == [5, 5, 2]
        assert torch.equal(torch.cat([b["n"] for b in batches]), torch.arange(12))
        assert batches[0]["x"].dtype == torch.float32 and batches[0]["n"].dtype == torch.int64
        assert batches[0]["img"].shape == (5, 2, 2)
    assert blocks.fetches == 1
    last = list(shard.iter_torch_batches(batch_size=5, drop_last=True))
    assert [len(b["n"]) for b in last] == [5, 5]
    # the fetched copy stays in its process; the shard itself pickles
    assert pickle.loads(pickle.dumps(shard)).__dict__["_columns"] is None


def test_batches_are_copies_not_views_of_the_cache() -> None:
    shard = DatasetShard(Blocks(), local=True)
    first = next(iter(shard.iter_torch_batches(batch_size=4)))
    first["x"].mul_(100)  # a loop that normalizes in place must not change the next epoch
    again = next(iter(shard.iter_torch_batches(batch_size=4)))
    assert torch.equal(again["x"], torch.arange(4, dtype=torch.float64))


def test_local_shuffle_reorders_every_row_once_and_the_seed_repeats() -> None:
    columns = {"n": np.arange(1000), "y": np.arange(1000) * 2.0}
    epoch = lambda seed: list(local_batches(columns, batch_size=64, shuffle_buffer=200,  # noqa: E731
                                            seed=seed))
    a, b, c = epoch(7), epoch(7), epoch(None)
    order = torch.cat([x["n"] for x in a])
    assert sorted(order.tolist()) == list(range(1000)) and order.tolist() != list(range(1000))
    assert all(torch.equal(x["y"], x["n"] * 2.0) for x in a)  # rows stay whole
    assert torch.equal(order, torch.cat([x["n"] for x in b]))
    assert not torch.equal(order, torch.cat([x["n"] for x in c]))
    assert [len(x["n"]) for x in a] == [64] * 15 + [40]


def test_buffered_order_draws_from_a_window_of_the_buffer_size() -> None:
    rng = np.random.default_rng(0)
    order = buffered_order(10_000, 500, 32, rng)
    assert sorted(order.tolist()) == list(range(10_000))
    # a row leaves the buffer at most one buffer-fill after it entered ...
    assert int((np.arange(10_000) - order).min()) >= -1000
    # ... and rows are really mixed across the window, not only within a batch
    assert np.abs(np.arange(10_000) - order).mean() > 100
    assert sorted(buffered_order(50, 500, 32, rng).tolist()) == list(range(50))  # buffer > rows
    assert buffered_order(0, 10, 4, rng).size == 0


def test_non_local_shards_and_other_arguments_are_unchanged() -> None:
    shard = DatasetShard(Blocks())
    assert not shard.local and shard.with_device(lambda: "cpu") is shard
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        list(DatasetShard(Blocks(), local=True).iter_torch_batches(batch_size=0))
