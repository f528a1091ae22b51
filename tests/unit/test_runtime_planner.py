"""Planning from the cache (no Ray): hits, force, from_step, only, cache=False, corruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import airflowdsl as af
from airflowdsl.runtime.planner import StepPlan, make_plan
from airflowdsl.runtime.store import ArtifactStore
from tests.unit.inproc import run_inproc


@af.ingest
def src() -> list:
    return [1, 2]


@af.preprocess
def left(xs: list) -> list:
    return xs


@af.preprocess(cache=False)
def right(xs: list) -> list:
    return xs


@af.predict
def join(a: list, b: list, k: int = 1) -> dict:
    return {"n": float(len(a) + len(b) + k)}


@af.pipeline
def diamond(k: int = 1):
    s = src()
    return join(left(s), right(s), k=k)


@af.pipeline
def chain(k: int = 1):
    return join(left(src()), left(src()), k=k)


def fill(st: ArtifactStore, compiled: object) -> None:
    """What a finished run leaves behind."""
    run_inproc(compiled, st)


def actions(plans: dict[str, StepPlan]) -> dict[str, str]:
    return {n: p.action for n, p in plans.items()}


@pytest.fixture()
def st(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.open(tmp_path)


def test_second_plan_is_all_cached_except_uncacheable(st: ArtifactStore) -> None:
    compiled = diamond.compile()
    first = make_plan(compiled, st)
    assert set(actions(first).values()) == {"run"}
    fill(st, compiled)
    again = make_plan(compiled, st)
    # right has cache=False: it reruns; join, which consumes it, waits for its output
    assert actions(again) == {"src": "cached", "left": "cached", "right": "run", "join": "run"}
    assert again["right"].reason == "cache disabled for this step"
    assert "served from the cache if its output is unchanged" in again["join"].reason
    # ... and right produced the same bytes: join is served (early cutoff)
    assert run_inproc(compiled, st)["join"] == "served"


def test_force_from_step_and_only(st: ArtifactStore) -> None:
    compiled = chain.compile()
    fill(st, compiled)
    assert set(actions(make_plan(compiled, st)).values()) == {"cached"}
    assert set(actions(make_plan(compiled, st, force=True)).values()) == {"run"}
    from_left = actions(make_plan(compiled, st, from_step="left"))
    assert from_left["src"] == "cached" and from_left["left"] == "run" and from_left["join"] == "run"
    only = actions(make_plan(compiled, st, only=["left"], force=True))
    assert only["join"] == "skip" and only["left"] == "run"
    with pytest.raises(ValueError, match="nope"):
        make_plan(compiled, st, only=["nope"])
    with pytest.raises(ValueError, match="from_step"):
        make_plan(compiled, st, from_step="nope")


def test_param_change_reruns_only_the_consumer(st: ArtifactStore) -> None:
    fill(st, chain.compile(k=1))
    acts = actions(make_plan(chain.compile(k=2), st))
    assert acts["join"] == "run" and acts["src"] == "cached"


def test_corrupt_needed_artifact_is_recomputed(st: ArtifactStore) -> None:
    compiled = chain.compile()
    fill(st, compiled)
    plans = make_plan(compiled, st)
    m = st.manifest(plans["src"].key.digest)
    assert m is not None
    (Path(st.artifact_paths(m)[0]) / "value.json").write_text(json.dumps([9, 9]))
    # src is not needed while everything downstream is cached
    assert actions(make_plan(compiled, st))["src"] == "cached"
    with pytest.warns(UserWarning, match="corrupt"):
        plan = make_plan(compiled, st, from_step="left")
    assert plan["src"].action == "run" and "checksum" in plan["src"].reason
