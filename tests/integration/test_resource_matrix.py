"""The resource matrix on a real 2-CPU Ray: every kind of nested Ray work a step starts
finishes, or fails at once with a message naming the step -- none hangs.

pytest-timeout is only the guard of the test run; the product's own limits (admission,
never-fits checks, bounded placement waits, the stall watchdog) are what is tested.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import resource_matrix as rm

from airflowdsl.errors import ResourceError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def _ok(run: object) -> dict[str, dict[str, float]]:
    assert run.status == "succeeded", (run.error, run.traceback)  # type: ignore[attr-defined]
    return run.metrics  # type: ignore[attr-defined,no-any-return]


def test_ray_data_from_steps_holding_0_half_and_1_cpu(ray_session: None, store_dir: Path) -> None:
    metrics = _ok(rm.reads.run(store=store_dir))
    expected = {"rows": float(rm.ROWS), "total": float(rm.ROWS * (rm.ROWS - 1))}
    assert metrics == {"read_0": expected, "read_0_5": expected, "read_1": expected}


def test_a_step_asking_for_every_cpu_fails_before_anything_runs(ray_session: None,
                                                                  store_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ResourceError) as err:
        rm.too_big.run(store=store_dir)
    assert time.monotonic() - started < 30
    msg = str(err.value)
    assert "step 'read_2' asks for num_cpus=2" in msg and "at most 1 CPU" in msg
    assert not list((store_dir / "artifacts").glob("*/*/*/manifest.json")) if \
        (store_dir / "artifacts").exists() else True  # read_0 did not run either


def test_trainer_tuner_and_batch_predictor_in_parallel(ray_session: None, store_dir: Path) -> None:
    from airflowdsl.runtime.history import History

    run = rm.training.run(store=store_dir)
    metrics = _ok(run)
    # every rank-0 report of the fit is a step record, in the run and in the history
    reports = run.steps["train_two_workers"].records["report"]
    assert [r["epoch"] for r in reports] == [0, 1]
    stored = History.for_root(str(store_dir)).records(run.id, "train_two_workers", "report")
    assert [r["data"]["epoch"] for r in stored] == [0, 1]
    # rank 0 read its half of the rows on each of 2 epochs
    assert metrics["train_two_workers"] == {"rows_rank0": float(rm.ROWS)}
    assert metrics["tune_two_trials"] == {"trials": 2.0, "errors": 0.0}
    assert metrics["batch_predict"] == {"rows": float(rm.ROWS), "finite": 1.0}


def test_trainer_reader_and_tuner_as_parallel_branches(ray_session: None, store_dir: Path) -> None:
    metrics = _ok(rm.parallel_branches.run(store=store_dir))
    assert metrics["read_1"]["rows"] == rm.ROWS
    assert metrics["tune_two_trials"]["errors"] == 0.0


def test_a_group_that_can_never_fit_fails_at_once(ray_session: None, store_dir: Path) -> None:
    import airflowdsl as af
    from airflowdsl.air import ScalingConfig

    @af.train
    def greedy(data: af.Dataset) -> dict[str, float]:
        from airflowdsl.train.trainer import DataParallelTrainer

        DataParallelTrainer(rm._loop, datasets={"train": data}, scaling_config=ScalingConfig(
            num_workers=3, resources_per_worker={"CPU": 1})).fit()
        return {}

    @af.pipeline
    def p():
        return greedy(rm.make_data())

    started = time.monotonic()
    run = p.run(store=store_dir)
    assert run.status == "failed" and time.monotonic() - started < 60
    assert "3 workers x 1 CPU = 3 CPU" in run.steps["greedy"].error
