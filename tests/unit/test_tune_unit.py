"""Tuner pieces that need no Ray cluster: config, search space, trial resources."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflowdsl.air import RunConfig, ScalingConfig
from airflowdsl.train import DataParallelTrainer
from airflowdsl.tune import TuneConfig, Tuner, _default_concurrency, grid_search, trial_bundles


def _loop() -> None:
    pass


def test_import_airflowdsl_does_not_import_ray_tune() -> None:
    code = "import sys, airflowdsl; assert 'ray.tune' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_search_space_helpers() -> None:
    from airflowdsl.tune import choice, loguniform, randint, uniform

    assert grid_search([1, 2]) == {"grid_search": [1, 2]}
    assert 2 <= randint(2, 8).sample() < 8
    assert choice(["a", "b"]).sample() in ("a", "b")
    assert 0.0 <= uniform(0, 1).sample() <= 1.0
    assert 1e-4 <= loguniform(1e-4, 1e-1).sample() <= 1e-1


def test_tune_config_validates() -> None:
    with pytest.raises(ValueError):
        TuneConfig(mode="biggest")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TuneConfig(num_samples=0)


def test_trial_bundles_match_the_worker_group() -> None:
    trainer = DataParallelTrainer(_loop, scaling_config=ScalingConfig(num_workers=2))
    # the resource model's default: a group leaves one whole CPU (2 CPUs: 2 x 0.5)
    assert trial_bundles(trainer, cluster_cpus=2) == [{}, {"CPU": 0.5}, {"CPU": 0.5}]
    local = DataParallelTrainer(_loop, scaling_config=ScalingConfig(num_workers=0))
    assert trial_bundles(local, cluster_cpus=2) == [{"CPU": 1.0}]
    # trainer trials get materialized data: no reserve, as many trials as fit
    assert _default_concurrency(trial_bundles(trainer, cluster_cpus=2), 2, reserve=0.0) == 2
    assert _default_concurrency(trial_bundles(trainer, cluster_cpus=16), 16, reserve=0.0) == 8
    # function trials keep a CPU free for data they may read lazily
    assert _default_concurrency([{"CPU": 1.0}], 2, reserve=1.0) == 1
    assert _default_concurrency([{"CPU": 4.0}], 2, reserve=1.0) == 1  # at least one


def test_tuner_defaults_to_the_trainers_run_config() -> None:
    rc = RunConfig(name="mine")
    trainer = DataParallelTrainer(_loop, run_config=rc)
    assert Tuner(trainer).run_config == rc
    with pytest.raises(TypeError):
        Tuner(42)  # type: ignore[arg-type]
