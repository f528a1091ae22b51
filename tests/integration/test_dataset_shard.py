"""``DatasetShard.iter_torch_batches``: the same batches as Ray's, built faster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from airflowdsl.air.shard import DatasetShard  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def _frame(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=rows), "n": np.arange(rows),
                         "flag": np.arange(rows) % 2 == 0})


def _same(a: list[dict[str, object]], b: list[dict[str, object]]) -> None:
    assert len(a) == len(b) and a
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert isinstance(x[k], torch.Tensor) and x[k].dtype == y[k].dtype  # type: ignore[union-attr]
            assert torch.equal(x[k], y[k])  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 64},
    {"batch_size": 64, "dtypes": torch.float32, "drop_last": True},
    {"batch_size": 50, "dtypes": {"x": torch.float64, "n": torch.int32, "flag": torch.bool}, "device": "cpu"},
])
def test_fast_path_gives_rays_batches(kwargs: dict[str, object]) -> None:
    import ray.data

    it = ray.data.from_pandas(_frame()).iterator()
    shard = DatasetShard(it, device=lambda: torch.device("cpu"))
    assert shard._all_numeric()
    ours = list(shard.iter_torch_batches(**kwargs))  # type: ignore[arg-type]
    rays = list(it.iter_torch_batches(**{"device": "cpu", **kwargs}))  # type: ignore[arg-type]
    _same(ours, rays)
    assert sum(len(b["n"]) for b in ours) == (256 if kwargs.get("drop_last") else 300)


def test_other_columns_and_collate_fn_go_to_ray() -> None:
    import ray.data

    frame = _frame(20)
    frame["name"] = [f"r{i}" for i in range(20)]
    shard = DatasetShard(ray.data.from_pandas(frame).iterator())
    assert not shard._all_numeric()
    batches = list(shard.iter_torch_batches(batch_size=8, device="cpu",
                                            collate_fn=lambda b: torch.as_tensor(b["n"])))
    assert [len(b) for b in batches] == [8, 8, 4]
    # everything else is the wrapped iterator's
    assert shard.schema().names == ["x", "n", "flag", "name"]
    assert shard.ray_iterator is not shard


def test_local_shard_of_a_materialized_split_gives_rays_batches() -> None:
    import ray.data

    part = ray.data.from_pandas(_frame()).materialize().split(2, equal=True)[1]
    shard = DatasetShard.of_materialized(part)
    assert shard.local
    kwargs = {"batch_size": 32, "device": "cpu",
              "dtypes": {"x": torch.float32, "n": torch.int32, "flag": torch.bool}}
    for _ in range(2):  # the second epoch batches the once-fetched copy
        _same(list(shard.iter_torch_batches(**kwargs)),  # type: ignore[arg-type]
              list(part.iterator().iter_torch_batches(**kwargs)))  # type: ignore[arg-type]
    shuffled = list(shard.iter_torch_batches(batch_size=32, local_shuffle_buffer_size=64))
    rows = sorted(part.to_pandas()["n"].tolist())
    assert len(rows) == 150 and sorted(torch.cat([b["n"] for b in shuffled]).tolist()) == rows
