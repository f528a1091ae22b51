"""Writes beside the consumers (issue 15): a step's outputs go downstream at once while a
writer thread of the producing worker stores them; the run returns only once every
manifest is committed, and consumers key on the final content hashes (early cutoff)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import airflowdsl as af
from airflowdsl.runtime.store import ArtifactStore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

SCALE = [1.0]


@af.step
def big() -> np.ndarray:
    return np.arange(400_000, dtype=np.float64)  # 3.2 MB: holds an object ref while written


@af.step
def inc(x: np.ndarray) -> np.ndarray:
    return x + 1.0


@af.step
def total(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> dict:
    return {"sum": float(a.sum() + b.sum() + c.sum())}


@af.pipeline
def beside():
    x = big()
    return total(inc(x), inc(x), inc(inc(x)))  # two identical inc keys: one key, two writes


def _check_all_stored(run: af.Run, store: Path) -> None:
    st = ArtifactStore.open(store)
    for name, step in run.steps.items():
        manifest = st.manifest(step.cache_key)
        assert manifest is not None, f"{name}: no manifest when the run returned"
        assert manifest["checksum"] == "xxh3_128t"
        assert st.verify(manifest) is None, name


def test_every_manifest_is_committed_when_the_run_returns(store_dir: Path) -> None:
    run = beside.run(store=store_dir)
    assert run.status == "succeeded", run.error
    assert run.output == {"sum": float(3 * np.arange(400_000).sum() + 4 * 400_000)}
    _check_all_stored(run, store_dir)
    again = beside.run(store=store_dir)
    assert all(s.cached for s in again.steps.values())
    forced = beside.run(store=store_dir, force=True)
    assert forced.status == "succeeded"
    _check_all_stored(forced, store_dir)


def test_consumers_key_on_the_content_written_beside(store_dir: Path) -> None:
    """An upstream that re-runs (from_step) with identical output leaves its consumers
    served: their keys, resolved from the summary, equal what the planner computes from
    the committed manifest on the next run."""
    beside.run(store=store_dir)
    rerun = beside.run(store=store_dir, from_step="big")
    assert rerun.status == "succeeded"
    again = beside.run(store=store_dir)
    assert all(s.cached for s in again.steps.values()), {
        n: s.reason for n, s in again.steps.items() if not s.cached}
