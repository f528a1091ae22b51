"""Cheap steps sharing a Ray task (runtime.fusion, issue 15) on a real local Ray: the same
outputs, logs, failures, early cutoff and copies as steps in tasks of their own."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import airflowdsl as af
from airflowdsl.runtime import fusion
from airflowdsl.runtime.raycluster import RayCluster

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


@af.step
def first(n: int = 100, unused: int = 0) -> np.ndarray:
    return np.arange(n, dtype=np.float64)


@af.step
def bump(x: np.ndarray) -> np.ndarray:
    print(f"bump ran in {os.getpid()}")
    return x + 1.0


@af.step
def material() -> dict:
    return {"x": np.arange(5, dtype=np.float64), "items": ["a"]}


@af.step
def scribble(m: dict) -> dict:
    """What a step may do to its input: the same in a group as through Ray."""
    m["items"].append("mine")
    try:
        m["x"] += 1.0
    except ValueError:
        return {"array_writable": False, "items": m["items"]}
    return {"array_writable": True, "items": m["items"]}


@af.pipeline
def scribbling() -> Any:
    m = material()
    return scribble(m), m


@af.step
def halve(x: np.ndarray, fail_if: str = "", k: int = 0) -> np.ndarray:
    if fail_if and Path(fail_if).exists():
        raise ValueError("halve was told to fail")
    return x / 2.0 + k


@af.step
def total(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    return float(a.sum() + b.sum() + c.sum() + d.sum())


@af.pipeline
def chain(fail_if: str = "", unused: int = 0) -> Any:
    return halve(bump(first(unused=unused)), fail_if=fail_if)


@af.pipeline
def fan(fail_if: str = "", shift: int = 0) -> Any:
    x = first()
    return total(halve(x, k=1 + shift), halve(x, fail_if=fail_if, k=2 + shift),
                 halve(x, k=3 + shift), halve(x, k=4 + shift))


def _record_times(pipe: Any, store: str, **params: Any) -> Any:
    """Run ``pipe`` once, so the history has each step's time; that run."""
    first_run = pipe.run(store=store, **params)
    assert first_run.status == "succeeded", first_run.error
    return first_run


@af.step
def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x[:50], x[50:]


@af.step
def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(b.sum() - a.sum())


@af.pipeline
def two_outputs() -> Any:
    low, high = split(first())
    return difference(low, high)


@af.step
def sleepy(x: np.ndarray, hang_if: str = "") -> np.ndarray:
    if hang_if and Path(hang_if).exists():
        print("sleepy is hanging", flush=True)
        time.sleep(300)
    return x * 3.0


@af.pipeline
def hanging(hang_if: str = "", n: int = 100) -> Any:
    return sleepy(bump(first(n=n)), hang_if=hang_if)


def _armed(pipe: Any, tmp_path: Path, seen: list[tuple[str, int]], param: str
           ) -> tuple[str, Path]:
    """A store with ``pipe``'s step times recorded while the file ``param`` names was
    absent, then that file created (the step it arms fails or hangs); the spy cleared."""
    store, flag = str(tmp_path / "store"), tmp_path / param
    _record_times(pipe, store, **{param: str(flag)})
    flag.touch()
    seen.clear()
    return store, flag


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """``(first step, steps)`` of every step task submitted (spying on the real one). The
    time limits are raised, so that which steps share a task does not depend on how long
    they took on a busy machine (tests/unit/test_fusion.py checks the limits)."""
    seen: list[tuple[str, int]] = []
    real = RayCluster.step_task

    def spy(self: RayCluster, spec: Any, n_returns: int, slots: Any = None, *,
            group: int = 0) -> Any:
        seen.append((spec.name, group))
        return real(self, spec, n_returns, slots, group=group)

    monkeypatch.setattr(RayCluster, "step_task", spy)
    monkeypatch.setattr(fusion, "STEP_S", 5.0)
    monkeypatch.setattr(fusion, "GROUP_S", 50.0)
    monkeypatch.delenv("AIRFLOWDSL_FUSE", raising=False)
    return seen


def test_a_cheap_chain_runs_in_one_task_with_the_same_results(
        tmp_path: Path, groups: list[tuple[str, int]]) -> None:
    store = str(tmp_path / "store")
    run1 = _record_times(chain, store)
    assert groups == [("first", 0), ("bump", 0), ("halve", 0)]  # no times yet
    groups.clear()
    run2 = chain.run(store=store, force=True)
    assert run2.status == "succeeded", run2.error
    assert groups == [("first", 3)]
    expected = (np.arange(100) + 1.0) / 2.0
    assert np.array_equal(run2.output, expected)
    assert np.array_equal(run2.load("first"), np.arange(100))
    assert np.array_equal(run2.load("bump"), np.arange(100) + 1.0)
    assert run2.steps["first"].cache_key == run1.steps["first"].cache_key
    assert run2.steps["halve"].cache_key == run1.steps["halve"].cache_key
    logs = Path(store, "runs", run2.id, "logs")
    assert "bump ran in" in (logs / "bump.log").read_text()
    assert not (logs / "halve.log").exists() or "bump ran" not in (logs / "halve.log").read_text()
    again = chain.run(store=store)  # everything stored, from what the group wrote
    assert again.cached_steps == ["first", "bump", "halve"]
    assert np.array_equal(again.output, expected)


def test_turned_off_every_step_has_its_own_task(tmp_path: Path, groups: list[tuple[str, int]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "store")
    _record_times(chain, store)
    monkeypatch.setenv("AIRFLOWDSL_FUSE", "0")
    groups.clear()
    assert chain.run(store=store, force=True).status == "succeeded"
    assert groups == [("first", 0), ("bump", 0), ("halve", 0)]


def test_a_failure_in_a_group_reports_each_step_as_it_ended_and_resumes(
        tmp_path: Path, groups: list[tuple[str, int]]) -> None:
    store, flag = _armed(fan, tmp_path, groups, "fail_if")
    run = fan.run(store=store, fail_if=str(flag), shift=1)  # the halves re-run
    assert any(n > 1 for _, n in groups), groups  # the halves shared tasks
    assert run.status == "failed"
    failed = [s for s in run.steps.values() if s.status == "failed"]
    assert [s.name for s in failed] == ["halve_2"]
    assert "halve was told to fail" in (failed[0].error or "")
    # the other halves ran to the end, in the failing step's group or not
    assert {n for n, s in run.steps.items() if s.status == "succeeded"} == \
        {"first", "halve", "halve_3", "halve_4"}
    assert run.steps["total"].status == "skipped"
    flag.unlink()
    resumed = fan.run(store=store, fail_if=str(flag), shift=1)
    assert resumed.status == "succeeded", resumed.error
    assert sorted(resumed.executed_steps) == ["halve_2", "total"]
    assert resumed.output == pytest.approx(4 * float(np.arange(100).sum()) / 2.0 + 100 * 14)


def test_a_step_in_a_group_is_served_when_its_upstream_reran_identically(
        tmp_path: Path, groups: list[tuple[str, int]]) -> None:
    store = str(tmp_path / "store")
    _record_times(chain, store)
    groups.clear()
    run = chain.run(store=store, unused=1)  # ``first`` re-runs with the same output
    assert run.status == "succeeded", run.error
    assert groups == [("first", 3)]
    assert run.executed_steps == ["first"]
    assert "re-ran but produced identical output" in run.steps["bump"].reason
    assert np.array_equal(run.output, (np.arange(100) + 1.0) / 2.0)


def test_a_step_gets_its_inputs_from_its_group_as_through_ray(
        tmp_path: Path, groups: list[tuple[str, int]]) -> None:
    store = str(tmp_path / "store")
    alone = _record_times(scribbling, store)
    groups.clear()
    grouped = scribbling.run(store=store, force=True)
    assert grouped.status == "succeeded", grouped.error
    assert any(n > 1 for _, n in groups), groups
    for run in (alone, grouped):  # arrays read-only; a modified list is the step's copy
        assert run.output[0] == {"array_writable": False, "items": ["a", "mine"]}
        assert run.output[1]["items"] == ["a"]
        assert np.array_equal(run.output[1]["x"], np.arange(5))


def test_a_step_with_two_outputs_feeds_its_group_by_position(
        tmp_path: Path, groups: list[tuple[str, int]]) -> None:
    store = str(tmp_path / "store")
    _record_times(two_outputs, store)
    groups.clear()
    run = two_outputs.run(store=store, force=True)
    assert run.status == "succeeded", run.error
    assert groups == [("first", 3)]
    assert run.output == float(np.arange(50, 100).sum() - np.arange(50).sum())
    low, high = run.load("split")
    assert np.array_equal(low, np.arange(50)) and np.array_equal(high, np.arange(50, 100))


@pytest.mark.timeout(120)
def test_ctrl_c_stops_a_group_and_the_next_run_resumes_from_what_it_stored(
        tmp_path: Path, groups: list[tuple[str, int]]) -> None:
    store, flag = _armed(hanging, tmp_path, groups, "hang_if")

    def interrupt() -> None:  # Ctrl-C once the group's last step hangs
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            logs = list(Path(store, "runs").glob("*/logs/sleepy.log"))
            if any("sleepy is hanging" in log.read_text() for log in logs):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=interrupt, daemon=True)
    watcher.start()
    started = time.monotonic()
    run = hanging.run(store=store, hang_if=str(flag), n=101)  # new keys: all three run
    watcher.join(timeout=5)
    assert groups == [("first", 3)]
    assert run.status == "cancelled" and time.monotonic() - started < 60
    assert {s.status for s in run.steps.values()} == {"cancelled"}  # heard of none of them
    flag.unlink()
    resumed = hanging.run(store=store, hang_if=str(flag), n=101)
    assert resumed.status == "succeeded", resumed.error
    # what the group finished before Ctrl-C was stored and is taken from the cache
    assert resumed.executed_steps == ["sleepy"]
    assert np.array_equal(resumed.output, (np.arange(101) + 1.0) * 3.0)
