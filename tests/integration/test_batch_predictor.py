"""BatchPredictor on a real local Ray: the in-process path and the actor pool give the
same predictions in the input's row order, with ``keep_columns`` and the checkpoint's
preprocessor, from multi-block and sliced inputs; the output is a Ray Dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflowdsl.air import Checkpoint
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.torch import TorchCheckpoint, TorchPredictor

pytestmark = pytest.mark.integration

FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def ckpt() -> Checkpoint:
    """A tiny MLP with an AIR preprocessor in its checkpoint (Normalizer: no fit to run)."""
    import torch
    from ray.data.preprocessors import Normalizer

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    checkpoint = TorchCheckpoint.from_model(model)
    checkpoint.set_preprocessor(Normalizer(columns=["a", "b"]))
    return checkpoint


def _data(n: int) -> object:
    import ray.data

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(10.0, 3.0, size=(n, 3)).astype(np.float32), columns=FEATURES)
    frame["id"] = np.arange(n)[::-1].copy()  # not the row number: order is checked by id
    frame["name"] = [f"row{i}" for i in frame["id"]]
    cuts = [0, n // 4, n // 2, 3 * n // 4, n]
    # Arrow blocks, as Parquet and from_items give: actors get pyarrow-backed batches
    return ray.data.from_arrow([pa.Table.from_pandas(frame.iloc[a:b], preserve_index=False)
                                for a, b in zip(cuts, cuts[1:], strict=False) if b > a])


def _expected(ckpt: Checkpoint, ds: object) -> np.ndarray:
    predictor = TorchPredictor.from_checkpoint(ckpt)
    frame = ds.to_pandas()  # type: ignore[attr-defined]
    return np.asarray(predictor.predict(frame[FEATURES])["predictions"], dtype=np.float32)


def test_in_process_and_pool_paths_agree_in_order_with_kept_columns(ray_session: None,
                                                                   ckpt: Checkpoint) -> None:
    import ray.data

    ds = _data(3000).materialize()  # 4 blocks
    expected = _expected(ckpt, ds)
    ids = ds.to_pandas()["id"].to_numpy()
    batch = BatchPredictor.from_checkpoint(ckpt, TorchPredictor)
    outs = {}
    for fast_path in ("auto", False):
        out = batch.predict(ds, feature_columns=FEATURES, keep_columns=["id", "name"],
                            batch_size=512, fast_path=fast_path)
        assert isinstance(out, ray.data.Dataset)
        outs[batch.last_path] = out.to_pandas()
    assert set(outs) == {"process", "pool"}
    # the same numpy dtypes whichever path scored (an ArrowDtype label compared with
    # thresholded predictions was all False on the pool path)
    assert outs["pool"].dtypes.to_dict() == outs["process"].dtypes.to_dict()
    assert outs["pool"]["id"].dtype == np.int64
    for frame in outs.values():
        assert list(frame.columns) == ["predictions", "id", "name"]
        np.testing.assert_allclose(frame["predictions"], expected, rtol=1e-5, atol=1e-6)
        assert (frame["id"].to_numpy() == ids).all()
        assert list(frame["name"]) == [f"row{i}" for i in ids]
    # the in-process output is usable as any Dataset, more than once
    again = batch.predict(ds, feature_columns=FEATURES, keep_columns=["id"])
    assert again.count() == 3000 and [r["id"] for r in again.take(3)] == [2999, 2998, 2997]


def test_in_process_path_honours_sliced_blocks_and_small_inputs(ray_session: None,
                                                               ckpt: Checkpoint) -> None:
    batch = BatchPredictor.from_checkpoint(ckpt, TorchPredictor)
    for ds in (_data(3000).limit(1234).materialize(), _data(7).materialize()):
        out = batch.predict(ds, feature_columns=FEATURES, keep_columns=["id"],
                            batch_size=100).to_pandas()
        assert batch.last_path == "process"
        np.testing.assert_allclose(out["predictions"], _expected(ckpt, ds), rtol=1e-5, atol=1e-6)
        assert list(out["id"]) == list(ds.to_pandas()["id"])


def test_output_dataset_cache_is_filled_without_executing(ray_session: None) -> None:
    """The in-process output is primed as ``Dataset._execute`` would, minus its cluster
    queries; on this Ray the cheap fill must work (``"executed"`` means the fallback,
    12+ ms per call, after a Ray upgrade), and the Dataset behaves as any other."""
    import ray.data

    from airflowdsl.train.batch_inprocess import prime_materialized

    frame = pd.DataFrame({"predictions": np.arange(5, dtype=np.float32), "id": np.arange(5)})
    ds = ray.data.from_blocks([frame])
    assert prime_materialized(ds) == "filled"
    assert prime_materialized(ds) == "filled"  # again: already cached, nothing to do
    assert ds.count() == 5 and ds.schema().names == ["predictions", "id"]
    assert ds.to_pandas().equals(frame) and ds.to_pandas().equals(frame)
    doubled = ds.map_batches(lambda b: {"x": b["id"] * 2}, batch_format="numpy")
    assert list(doubled.to_pandas()["x"]) == [0, 2, 4, 6, 8]
    empty = ray.data.from_items([{"a": 1}]).map(lambda r: r)  # not over in-memory blocks
    assert prime_materialized(empty) in ("executed", "lazy") and empty.count() == 1
