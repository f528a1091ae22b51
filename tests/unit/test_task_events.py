"""Step tasks send Ray task events unless AIRFLOWDSL_RAY_TASK_EVENTS=0 (issue 15)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflowdsl.runtime.raycluster import RayCluster


class _Remote:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def options(self, **opts: Any) -> dict[str, Any]:
        self.seen.append(opts)
        return opts


def _spec() -> Any:
    return SimpleNamespace(num_cpus=0, num_gpus=0, memory=0, resources={}, retries=0,
                           name="train")


@pytest.mark.parametrize(("env", "expected"), [(None, True), ("0", False), ("1", True)])
def test_step_task_options_carry_task_events(monkeypatch: pytest.MonkeyPatch,
                                             env: str | None, expected: bool) -> None:
    if env is None:
        monkeypatch.delenv("AIRFLOWDSL_RAY_TASK_EVENTS", raising=False)
    else:
        monkeypatch.setenv("AIRFLOWDSL_RAY_TASK_EVENTS", env)
    cluster = RayCluster()
    cluster._remote_fn = (_Remote(), _Remote())
    opts = cluster.step_task(_spec(), 2)
    assert opts["enable_task_events"] is expected
    assert opts["name"] == "airflowdsl:train" and opts["num_returns"] == 2


def test_switching_task_events_makes_new_options(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = RayCluster()
    remote = _Remote()
    cluster._remote_fn = (remote, _Remote())
    monkeypatch.delenv("AIRFLOWDSL_RAY_TASK_EVENTS", raising=False)
    assert cluster.step_task(_spec(), 2)["enable_task_events"] is True
    monkeypatch.setenv("AIRFLOWDSL_RAY_TASK_EVENTS", "0")
    assert cluster.step_task(_spec(), 2)["enable_task_events"] is False
    assert len(remote.seen) == 2


def test_a_group_task_runs_the_group_function_under_its_first_steps_name() -> None:
    cluster = RayCluster()
    single, group = _Remote(), _Remote()
    cluster._remote_fn = (single, group)
    opts = cluster.step_task(_spec(), 9, group=3)
    assert opts["name"] == "airflowdsl:train+2" and opts["num_returns"] == 9
    assert group.seen == [opts] and single.seen == []
    assert cluster.step_task(_spec(), 9)["name"] == "airflowdsl:train"
    assert len(single.seen) == 1
