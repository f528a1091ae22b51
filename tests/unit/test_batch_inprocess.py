"""BatchPredictor's in-process decision (CostGauge): by measured cost, not by input kind."""

from __future__ import annotations

from airflowdsl.train.batch_inprocess import FAST_PATH_BUDGET_S, CostGauge


def test_cheap_job_stays_in_process_after_the_probe() -> None:
    assert CostGauge(200_000, pull_s=0.01, step=32768).after(4096, 0.002) is True


def test_a_small_probe_that_overstates_gets_one_full_slice_measured() -> None:
    gauge = CostGauge(4_000_000, pull_s=0.26, step=32768)
    assert gauge.after(4096, 0.003) is None  # 4M x 0.73 us/row > budget: measure more
    assert gauge.after(32768, 0.005) is True  # 0.15 us/row at full size: 0.6 s in all


def test_slow_models_and_big_inputs_go_to_the_pool() -> None:
    assert CostGauge(200_000, pull_s=0.0, step=32768).after(4096, 0.5) is False  # slow model
    gauge = CostGauge(40_000_000, pull_s=0.0, step=32768)
    assert gauge.after(4096, 0.001) is None
    assert gauge.after(32768, 0.004) is False  # measured at full size: still > budget
    big = CostGauge(9_000_000, pull_s=FAST_PATH_BUDGET_S, step=32768)  # moving it costs more
    assert big.after(4096, 0.0) is False
    assert CostGauge(100, pull_s=0.0, step=32768).after(100, 5.0) is True  # all done: kept
