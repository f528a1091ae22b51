"""Which cheap steps share a Ray task (runtime.fusion, issue 15): pure planning logic."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflowdsl.runtime import fusion
from airflowdsl.runtime.fusion import GROUP_S, STEP_S, fusable, plan_groups


def _chain(n: int) -> tuple[list[str], dict[str, list[str]]]:
    todo = [f"s{i}" for i in range(n)]
    return todo, {s: ([todo[i - 1]] if i else []) for i, s in enumerate(todo)}


def _fan(n: int) -> tuple[list[str], dict[str, list[str]]]:
    incs = [f"inc{i}" for i in range(n)]
    deps = {"start": [], **{i: ["start"] for i in incs}, "join": list(incs)}
    return ["start", *incs, "join"], deps


def _valid(groups: list[list[str]], todo: list[str], deps: dict[str, list[str]]) -> None:
    """No step in two groups; within a group topological order; every step's upstreams
    outside its group are the first step's (so the group can go with its first step)."""
    seen = [m for g in groups for m in g]
    assert len(seen) == len(set(seen))
    pos = {n: i for i, n in enumerate(todo)}
    for g in groups:
        assert g == sorted(g, key=pos.__getitem__)
        outside = set(deps[g[0]])
        for m in g[1:]:
            assert set(deps[m]) - set(g) <= outside


def test_a_cheap_chain_is_one_group() -> None:
    todo, deps = _chain(50)
    costs = dict.fromkeys(todo, 0.0005)
    groups = plan_groups(todo, deps, costs, set(todo), bins=2)
    assert groups == [todo]


def test_a_chain_splits_where_its_recorded_time_would_pass_the_group_budget() -> None:
    todo, deps = _chain(10)
    costs = dict.fromkeys(todo, GROUP_S / 4)
    groups = plan_groups(todo, deps, costs, set(todo), bins=2)
    assert [len(g) for g in groups] == [4, 4, 2]
    _valid(groups, todo, deps)


def test_a_step_that_cannot_share_a_task_breaks_the_chain() -> None:
    todo, deps = _chain(6)
    costs = dict.fromkeys(todo, 0.001)
    groups = plan_groups(todo, deps, costs, set(todo) - {"s3"}, bins=2)
    assert groups == [["s0", "s1", "s2"], ["s4", "s5"]]


def test_a_fan_out_is_packed_into_as_many_groups_as_slots() -> None:
    todo, deps = _fan(50)
    costs = dict.fromkeys(todo, 0.0005)
    groups = plan_groups(todo, deps, costs, set(todo), bins=2)
    assert sorted(len(g) for g in groups) == [25, 25]
    assert all("start" not in g and "join" not in g for g in groups)
    _valid(groups, todo, deps)


def test_siblings_are_packed_by_recorded_time_and_never_past_the_budget() -> None:
    todo, deps = _fan(6)
    costs = {**dict.fromkeys(todo, 0.001), "inc0": GROUP_S * 0.9, "inc1": GROUP_S * 0.9}
    groups = plan_groups(todo, deps, costs, set(todo), bins=2)
    _valid(groups, todo, deps)
    assert all(sum(costs[m] for m in g) <= GROUP_S for g in groups)
    assert not any({"inc0", "inc1"} <= set(g) for g in groups)  # the two slow ones apart


def test_a_step_feeding_two_steps_ends_its_chain_and_its_readers_are_siblings() -> None:
    todo = ["a", "b", "c", "d", "e"]
    deps = {"a": [], "b": ["a"], "c": ["b"], "d": ["b"], "e": ["c", "d"]}
    costs = dict.fromkeys(todo, 0.001)
    groups = plan_groups(todo, deps, costs, set(todo), bins=1)
    assert groups == [["a", "b"], ["c", "d"]]
    _valid(groups, todo, deps)


def test_siblings_with_other_upstreams_are_not_mixed() -> None:
    todo = ["a", "b", "x1", "x2", "y1", "y2"]
    deps = {"a": [], "b": [], "x1": ["a"], "x2": ["a"], "y1": ["b"], "y2": ["b"]}
    groups = plan_groups(todo, deps, dict.fromkeys(todo, 0.001), set(todo), bins=1)
    assert ["x1", "x2"] in groups and ["y1", "y2"] in groups
    _valid(groups, todo, deps)


def _plan(**spec: Any) -> Any:
    base = {"num_cpus": None, "num_gpus": None, "memory": None, "resources": None,
            "retries": 0}
    return SimpleNamespace(spec=SimpleNamespace(**{**base, **spec}))


def test_only_cheap_steps_asking_for_nothing_without_retries_on_a_local_store_may_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOWDSL_FUSE", raising=False)
    plans = {"ok": _plan(), "slow": _plan(), "never": _plan(), "cpu": _plan(num_cpus=1),
             "retry": _plan(retries=2)}
    costs = {"ok": STEP_S, "slow": STEP_S * 1.5, "cpu": 0.001, "retry": 0.001}
    local = SimpleNamespace(is_local=True)
    assert fusable(plans, list(plans), costs, local) == {"ok"}
    assert fusable(plans, list(plans), costs, SimpleNamespace(is_local=False)) == set()
    assert fusable(plans, list(plans), costs, None) == set()
    monkeypatch.setenv("AIRFLOWDSL_FUSE", "0")
    assert not fusion.enabled() and fusable(plans, list(plans), costs, local) == set()


def test_a_step_in_a_group_gets_its_input_as_ray_would_hand_it() -> None:
    import numpy as np

    from airflowdsl.runtime.tasks import _copy

    class Local:  # a class pickle cannot find by name: cloudpickle, as in Ray
        def __init__(self) -> None:
            self.items = ["a"]

    value = {"x": np.arange(4.0), "items": ["a"], "fn": lambda v: v + 1, "obj": Local()}
    got = _copy(value)
    assert not got["x"].flags.writeable and np.array_equal(got["x"], value["x"])
    got["items"].append("b")
    got["obj"].items.append("b")
    assert value["items"] == ["a"] and value["obj"].items == ["a"]  # the step's own copy
    assert got["fn"](1) == 2
