"""AIR configs: validated, frozen, with defaults that leave CPUs to Ray Data."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from airflowdsl.air import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from airflowdsl.air import config as config_module


def test_importable_from_both_places() -> None:
    assert config_module.ScalingConfig is ScalingConfig
    assert config_module.RunConfig is RunConfig


@pytest.mark.parametrize("make", [
    lambda: ScalingConfig(num_workers=-1),
    lambda: ScalingConfig(num_workers=2, resources_per_worker={"CPU": -1}),
    lambda: ScalingConfig(placement_strategy="EVERYWHERE"),
    lambda: ScalingConfig(num_wokers=2),
    lambda: CheckpointConfig(num_to_keep=0),
    lambda: CheckpointConfig(checkpoint_score_order="up"),
    lambda: FailureConfig(max_failures=-2),
    lambda: RunConfig(verbose=7),
    lambda: RunConfig(nmae="x"),
])
def test_invalid_values_raise_validation_errors(make) -> None:  # noqa: ANN001
    with pytest.raises(ValidationError):
        make()


def test_error_names_the_field() -> None:
    with pytest.raises(ValidationError, match="num_workers"):
        ScalingConfig(num_workers="many")


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ScalingConfig(num_workers=2).num_workers = 3  # type: ignore[misc]


def test_default_workers_leave_cpus_for_ray_data() -> None:
    small = ScalingConfig(num_workers=2).worker_resources(cluster_cpus=2)
    assert 2 * small["CPU"] <= 2 - 1  # at least one CPU stays free on 2 cores
    big = ScalingConfig(num_workers=2).worker_resources(cluster_cpus=16)
    assert big == {"CPU": 1.0}
    gpu = ScalingConfig(num_workers=1, use_gpu=True).worker_resources(cluster_cpus=8)
    assert gpu["GPU"] == 1.0
    own = ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}).bundles(cluster_cpus=2)
    assert own == [{"CPU": 0.5}, {"CPU": 0.5}]


def test_failure_config_allows() -> None:
    assert not FailureConfig().allows(1)
    assert FailureConfig(max_failures=1).allows(1)
    assert not FailureConfig(max_failures=1).allows(2)
    assert FailureConfig(max_failures=-1).allows(10**6)


def test_storage_path_resolution(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    assert RunConfig(storage_path=str(tmp_path)).resolved_storage_path() == str(tmp_path)
    monkeypatch.setenv("AIRFLOWDSL_HOME", str(tmp_path / "home"))
    assert RunConfig().resolved_storage_path() == str(tmp_path / "home" / "train")
