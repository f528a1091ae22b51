"""HorovodTrainer on real Ray + real Horovod (PyTorch + Gloo): 2 workers on the 2-CPU fixture.

One module-scoped fit carries most assertions; a second small fit checks that a rank
failing mid-training fails the fit (instead of leaving rank 0 blocked in an allreduce).
The loop lives in tests/resources/horovod_loops.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("horovod.torch")

import torch  # noqa: E402
from horovod_loops import FEATURES, WEIGHTS, horovod_regression_loop, regression_frame  # noqa: E402

from airflowdsl.air import Result, RunConfig, ScalingConfig  # noqa: E402
from airflowdsl.train import TrainingFailedError  # noqa: E402
from airflowdsl.train.horovod import HorovodConfig, HorovodTrainer  # noqa: E402
from airflowdsl.train.torch import TorchCheckpoint  # noqa: E402

pytestmark = pytest.mark.integration

ROWS = 512  # even: streaming_split(2, equal=True) drops a remainder row otherwise
EPOCHS = 3


def _fit(tmp: Path, name: str, config: dict[str, Any]) -> Result:
    import ray.data

    out = tmp / f"{name}_out"
    out.mkdir()
    trainer = HorovodTrainer(
        horovod_regression_loop,
        train_loop_config={"out_dir": str(out), **config},
        horovod_config=HorovodConfig(timeout_s=60),
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name=name, storage_path=str(tmp)),
        datasets={"train": ray.data.from_pandas(regression_frame(ROWS))},
    )
    return trainer.fit()


@pytest.fixture(scope="module")
def fitted(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    tmp = tmp_path_factory.mktemp("horovod_fit")
    return _fit(tmp, "main", {"epochs": EPOCHS}), tmp / "main_out"


def _ranks(out: Path) -> list[dict[str, Any]]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_loss_goes_down(fitted: tuple[Result, Path]) -> None:
    result, _ = fitted
    df = result.metrics_dataframe
    assert list(df["epoch"]) == list(range(EPOCHS))
    assert (df["hvd_size"] == 2).all()
    assert (df["rows"] == ROWS // 2).all()
    assert df["loss"].iloc[-1] < 0.1 * df["loss"].iloc[0]


def test_parameters_equal_across_ranks(fitted: tuple[Result, Path]) -> None:
    result, out = fitted
    # different seeds per rank: the ranks really started apart ...
    init_sums = result.metrics["init_sums"]
    assert len(init_sums) == 2 and init_sums[0] != init_sums[1]
    # ... broadcast_parameters + DistributedOptimizer kept them identical every epoch
    for sums in result.metrics_dataframe["param_sums"]:
        assert len(sums) == 2 and sums[0] == sums[1]
    rank0, rank1 = (np.load(out / f"rank{r}_params.npy") for r in range(2))
    assert np.array_equal(rank0, rank1)


def test_horovod_ranks_match_the_session_and_the_plan(fitted: tuple[Result, Path]) -> None:
    import ray

    _, out = fitted
    ranks = _ranks(out)
    for rank, info in enumerate(ranks):
        assert info["hvd_rank"] == info["session_rank"] == rank
        assert info["hvd_local_rank"] == rank  # one node: local ranks are the ranks
        assert (info["hvd_size"], info["hvd_local_size"], info["hvd_cross_size"]) == (2, 2, 1)
        env = info["env"]
        assert env["HOROVOD_CONTROLLER"] == env["HOROVOD_CPU_OPERATIONS"] == "gloo"
        assert env["HOROVOD_HOSTNAME"] == ray.get_runtime_context().get_node_id()
        assert env["HOROVOD_GLOO_TIMEOUT_SECONDS"] == "60"
    assert ranks[0]["env"]["HOROVOD_GLOO_RENDEZVOUS_PORT"] == ranks[1]["env"][
        "HOROVOD_GLOO_RENDEZVOUS_PORT"]


def test_each_rank_trains_on_a_disjoint_shard(fitted: tuple[Result, Path]) -> None:
    _, out = fitted
    ids = [set(info["ids"]) for info in _ranks(out)]
    assert len(ids[0]) == len(ids[1]) == ROWS // 2
    assert not ids[0] & ids[1]
    assert ids[0] | ids[1] == set(range(ROWS))


def test_checkpoint_holds_the_trained_model(fitted: tuple[Result, Path]) -> None:
    result, out = fitted
    assert result.checkpoint is not None
    model = TorchCheckpoint.from_checkpoint(result.checkpoint).get_model(
        torch.nn.Linear(len(FEATURES), 1))
    np.testing.assert_allclose(model.weight.detach().numpy()[0], WEIGHTS, atol=0.1)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    np.testing.assert_array_equal(flat, np.load(out / "rank0_params.npy"))


def test_a_failing_rank_fails_the_fit(ray_session: None, tmp_path: Path) -> None:
    # rank 1 raises after one epoch of allreduces; rank 0 then waits in Horovod for a peer
    # that is gone: the fit must fail with rank 1's error, not hang.
    with pytest.raises(TrainingFailedError) as info:
        _fit(tmp_path, "failing", {"epochs": 3, "fail_rank": 1, "fail_epoch": 1})
    message = str(info.value)
    assert "rank 1" in message and "injected failure on rank 1" in message
    assert "horovod_loops.py" in message  # the user's own frame
