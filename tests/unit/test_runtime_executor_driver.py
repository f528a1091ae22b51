"""The executor's fixed per-run driver work (no Ray): the modules shipped to the workers
come from the fingerprints planning made, and the progress records are cleared on a
background thread that the run waits for (with a limit and a warning)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airflowdsl.air import progress
from airflowdsl.runtime import executor, fingerprint
from airflowdsl.runtime.planner import make_plan
from airflowdsl.runtime.store import ArtifactStore
from tests.modules import write_module
from tests.unit.inproc import run_inproc


def load(tmp_path: Path, source: str) -> ModuleType:
    name = f"drv_{uuid.uuid4().hex[:8]}"
    return write_module(tmp_path / f"{name}.py", name, source)


def pipeline_using(tmp_path: Path, helper: ModuleType) -> ModuleType:
    return load(tmp_path, f"""
        import airflowdsl as af
        import {helper.__name__} as helper

        @af.step
        def make() -> list:
            return [1, 2]

        @af.step
        def use(xs: list) -> list:
            return helper.twice(xs)

        @af.pipeline
        def pipe():
            return use(make())
    """)


def helper_module(tmp_path: Path) -> ModuleType:
    return load(tmp_path, """
        def twice(xs):
            return xs + xs
    """)


def test_shipped_modules_come_from_the_planning_fingerprints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = helper_module(tmp_path)
    mod = pipeline_using(tmp_path, helper)
    st = ArtifactStore.open(tmp_path / "store")
    plans = make_plan(mod.pipe.compile(), st, force=True)
    assert all(p.fingerprint is not None for p in plans.values())
    walked = set().union(*(fingerprint.project_modules(p.spec.fn) for p in plans.values()))
    assert walked == {mod.__name__, helper.__name__}

    def no_second_walk(fn: Any) -> set[str]:
        raise AssertionError("the code was walked again after planning")

    monkeypatch.setattr(fingerprint, "project_modules", no_second_walk)
    assert executor._modules(plans) == walked
    for p in plans.values():  # a plan without a fingerprint: its code is walked here
        p.fingerprint = None
    with pytest.raises(AssertionError, match="walked again"):
        executor._modules(plans)


def test_shipped_modules_follow_the_code_of_each_run(tmp_path: Path) -> None:
    """A pipeline redefined in the same process (another helper module): the next plan
    ships the modules its code uses now, not those of the previous definition."""
    st = ArtifactStore.open(tmp_path / "store")
    first, second = helper_module(tmp_path), helper_module(tmp_path)
    before = executor._modules(make_plan(pipeline_using(tmp_path, first).pipe.compile(), st,
                                         force=True))
    mod = pipeline_using(tmp_path, second)
    after = executor._modules(make_plan(mod.pipe.compile(), st, force=True))
    assert first.__name__ in before and second.__name__ not in before
    assert after == {mod.__name__, second.__name__}


def test_cached_steps_ship_no_modules(tmp_path: Path) -> None:
    mod = pipeline_using(tmp_path, helper_module(tmp_path))
    st = ArtifactStore.open(tmp_path / "store")
    compiled = mod.pipe.compile()
    run_inproc(compiled, st)
    plans = make_plan(compiled, st)
    assert {p.action for p in plans.values()} == {"cached"}
    assert executor._modules(plans) == set()


def test_background_calls_run_in_order_and_report_done_even_when_one_raises() -> None:
    seen: list[int] = []

    def boom() -> None:
        raise RuntimeError("not the caller's problem")

    events = [executor._background(seen.append, 1), executor._background(boom),
              executor._background(seen.append, 2)]
    assert all(e.wait(10) for e in events)
    assert seen == [1, 2]


def test_clearing_progress_is_waited_for_with_a_limit_and_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cleared: list[str] = []
    release = threading.Event()

    def slow_clear(run_id: str) -> None:
        release.wait(10)
        cleared.append(run_id)

    monkeypatch.setattr(progress, "clear", slow_clear)
    monkeypatch.setattr(executor, "PROGRESS_CLEAR_S", 0.05)
    wait = executor._clear_progress("run-a")
    with pytest.warns(RuntimeWarning, match="progress records of run run-a"):
        wait()
    release.set()
    monkeypatch.setattr(executor, "PROGRESS_CLEAR_S", 10.0)
    executor._clear_progress("run-b")()  # the same thread goes on serving
    assert cleared == ["run-a", "run-b"]


def test_steps_of_one_function_share_its_code_key_part_unless_stale(tmp_path: Path) -> None:
    """Planning makes a function's code part once per plan; code changed on disk since
    its import makes a part per step (each its own never-reused marker), as before."""
    mod = load(tmp_path, """
        import airflowdsl as af

        @af.step
        def make() -> list:
            return [1]

        @af.step
        def use(xs: list, k: int) -> list:
            return xs * k

        @af.pipeline
        def pipe():
            xs = make()
            return use(xs, k=1), use(xs, k=2)
    """)
    st = ArtifactStore.open(tmp_path / "store")
    plans = make_plan(mod.pipe.compile(), st, force=True)
    one, two = plans["use"].key, plans["use_2"].key
    assert one.part("code") is two.part("code")
    assert one.digest != two.digest  # the params still tell them apart
    path = Path(mod.__file__)
    path.write_text(path.read_text().replace("xs * k", "xs * k * 10"))
    plans = make_plan(mod.pipe.compile(), st, force=True)
    one_part, two_part = plans["use"].key.part("code"), plans["use_2"].key.part("code")
    assert one_part is not None and two_part is not None
    assert any(k.startswith("stale:") for k in one_part.detail)
    assert one_part.digest != two_part.digest
