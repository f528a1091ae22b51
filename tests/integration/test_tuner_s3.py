"""A Tuner inside a pipeline step whose store is S3 (moto): trial checkpoints are persisted
by Ray Tune from the trial's process straight into ``<store>/train`` through our
``pyarrow.fs`` filesystem (the store's endpoint and keys), and the grid's checkpoints are
URI checkpoints that load from the bucket (issue 12)."""

from __future__ import annotations

import pytest
from tune_loops import objective

from airflowdsl.air import RunConfig, progress
from airflowdsl.air.remote import COMPLETE_MARKER
from airflowdsl.air.storage import options_for
from airflowdsl.tune import TuneConfig, Tuner, grid_search
from tests.moto_s3 import moto_s3

pytestmark = pytest.mark.integration


def test_tuner_in_a_step_keeps_trial_checkpoints_in_the_s3_store(ray_session: None) -> None:
    with moto_s3() as s3:
        store = s3.uri("pipelines/tuned")
        previous = progress.bind(progress.StepContext(
            "run-1", "tune", store=store, store_options=options_for(store),
            cache_key="e" * 40, reuse=True))
        try:
            grid = Tuner(objective, param_space={"x": grid_search([2])},
                         tune_config=TuneConfig(metric="score", mode="max"),
                         run_config=RunConfig(name="tn", verbose=0)).fit()
        finally:
            progress.bind(previous)
        assert grid.num_errors == 0, grid.errors
        best = grid.get_best_result().checkpoint
        assert best is not None and best.uri is not None
        assert best.uri.startswith(f"{store}/train/tn/")
        assert best.to_dict() == {"x": 2, "step": 1}  # read from the bucket, complete
        keys = s3.keys("pipelines/tuned/train/tn/")
        assert any(k.endswith(f"/checkpoint_000000/{COMPLETE_MARKER}") for k in keys), keys
