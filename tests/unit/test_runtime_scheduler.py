"""The scheduler's submission rule (``_pick``), without Ray: how far ahead steps are
submitted, and how a fan-out is queued into lanes instead of spawning workers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from airflowdsl.runtime.resources import ClusterView, Request, admits
from airflowdsl.runtime.scheduler import _next_admitted, _pick


def _plans(kinds: dict[str, str]) -> dict[str, Any]:
    return {n: SimpleNamespace(spec=SimpleNamespace(kind=k)) for n, k in kinds.items()}


def _submit_all(deps: dict[str, list[str]], *, finished: set[str], slots: int = 2,
                kinds: dict[str, str] | None = None, admit: Any = None
                ) -> list[tuple[str, str | None]]:
    """Submit until ``_pick`` says stop; nothing finishes meanwhile except ``finished``."""
    plans = _plans({n: (kinds or {}).get(n, "step") for n in deps})
    todo = [n for n in deps if n not in finished]
    refs: dict[str, Any] = {n: [object()] for n in finished}
    inflight: list[str] = []
    picked = []
    while True:
        name, gate = _pick(todo, plans, deps, refs, inflight, finished, slots, admit)
        if name is None:
            return picked
        if gate is not None:
            deps[name] = [*deps[name], gate]
        refs[name] = [object()]
        inflight.append(name)
        picked.append((name, gate))


def test_a_chain_is_submitted_ahead_but_boundedly() -> None:
    deps = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"], "e": ["d"]}
    # one ready, then waiting steps (which Ray starts without a driver round trip)
    assert _submit_all(deps, finished=set()) == [("a", None), ("b", None), ("c", None)]


def test_a_fan_out_runs_as_lanes_behind_the_running_steps() -> None:
    deps = {"s": [], **{f"x{i}": ["s"] for i in range(6)}}
    picked = _submit_all(deps, finished={"s"})
    # two start at once (the run slots); two more queue, one behind each of them
    assert picked == [("x0", None), ("x1", None), ("x2", "x0"), ("x3", "x1")]


def test_dependents_of_one_running_step_are_bounded_too() -> None:
    deps = {"s": [], **{f"x{i}": ["s"] for i in range(6)}}
    # while s runs, only run_slots of its dependents are submitted to wait on it
    assert _submit_all(deps, finished=set()) == [("s", None), ("x0", None), ("x1", None)]


def test_cpu_holding_steps_wait_for_admission() -> None:
    """The resource model's admission (2 CPUs: steps may hold 1 CPU together): a second
    1-CPU step is not submitted while the first is in flight; zero-CPU steps are."""
    cpus = {"a": 1.0, "b": 1.0, "p": 0.0}
    view = ClusterView({"CPU": 2.0}, ({"CPU": 2.0},))

    def admit(name: str, inflight: list[str]) -> bool:
        return admits(sum(cpus[n] for n in inflight), Request(cpus=cpus[name]), view)

    picked = _submit_all({"a": [], "b": [], "p": []}, finished=set(), admit=admit)
    assert picked == [("a", None), ("p", None)]


def test_with_step_slots_ready_steps_are_left_to_ray() -> None:
    """With step slots Ray bounds the ready steps: every step goes at once, in order, no
    lanes (``_next_admitted``, the path ``run`` takes then); a step holding CPUs still
    waits until the resource model admits it."""
    deps = {"s": [], **{f"x{i}": ["s"] for i in range(8)}, "cpu": ["s"]}
    cpus = {n: 0.0 for n in deps} | {"x1": 1.0, "cpu": 1.0}
    view = ClusterView({"CPU": 2.0}, ({"CPU": 2.0},))

    def admit(name: str, inflight: Any) -> bool:
        return admits(sum(cpus[n] for n in inflight), Request(cpus=cpus[name]), view)

    todo, refs, inflight = [*deps][1:], {"s": [object()]}, []
    while (name := _next_admitted(todo, deps, refs, admit, inflight)) is not None:
        refs[name] = [object()]
        inflight.append(name)
    assert inflight == [f"x{i}" for i in range(8)] and todo == ["cpu"]


def test_chain_cover_bounds_how_many_steps_can_run_at_once() -> None:
    from airflowdsl.runtime.scheduler import chain_cover

    chain = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}
    assert chain_cover(list(chain), chain) == 1
    fan = {"s": [], **{f"x{i}": ["s"] for i in range(5)}, "j": [f"x{i}" for i in range(5)]}
    assert chain_cover(list(fan), fan) == 5
    two = {"a": [], "b": ["a"], "p": [], "q": ["p"], "j": ["b", "q"]}
    assert chain_cover(list(two), two) == 2
    diamond = {"s": [], "l": ["s"], "r": ["s"], "j": ["l", "r"]}
    assert chain_cover(list(diamond), diamond) == 2
