"""A re-run step whose bytes are already committed under its key writes nothing new
(content-addressed dedupe, ``cutoff.same_stored``), and never keeps an entry that differs,
has lost a file, expires, or failed verification. Step bodies run in this process
(``inproc``: the task body without Ray)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import airflowdsl as af
from airflowdsl.runtime.store import ArtifactStore
from tests.unit.inproc import run_inproc

SEED = "AIRFLOWDSL_TEST_DEDUPE_SEED"


@af.step
def make() -> np.ndarray:  # the variable changes what one key stores (not part of the key)
    return np.arange(1000, dtype=np.float64) + float(os.environ.get(SEED, "0"))


@af.step
def double(x: np.ndarray) -> np.ndarray:
    return x * 2.0


@af.step(cache_ttl=3600)
def halve(x: np.ndarray) -> np.ndarray:
    return x / 2.0


@af.pipeline
def pipe():
    x = make()
    return double(x), halve(x)


def _run(st: ArtifactStore, **kw: Any) -> dict[str, dict[str, Any]]:
    from airflowdsl.runtime.planner import make_plan

    run_inproc(pipe.compile(), st, **kw)
    plans = make_plan(pipe.compile(), st)
    manifests = {}
    for name, plan in plans.items():
        assert plan.action == "cached", (name, plan.reason)
        manifests[name] = plan.manifest
        assert st.verify(plan.manifest) is None
    return manifests


def _folders(st: ArtifactStore, manifest: dict[str, Any]) -> set[str]:
    return {p.name for p in Path(st.entry(manifest["key"])).iterdir() if p.is_dir()}


@pytest.fixture()
def st(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactStore:
    monkeypatch.delenv(SEED, raising=False)
    return ArtifactStore.open(tmp_path / "store")


def test_forced_rerun_of_identical_bytes_writes_nothing(st: ArtifactStore) -> None:
    first = _run(st)
    again = _run(st, force=True)
    for name in ("make", "double"):
        assert again[name] == first[name], name  # same write folder, same manifest
        assert _folders(st, again[name]) == {first[name]["data"]}
    # cache_ttl: the entry's age is its write time, so it is written afresh
    assert again["halve"]["data"] != first["halve"]["data"]
    assert again["halve"]["created"] > first["halve"]["created"]


def test_changed_bytes_under_one_key_are_written(st: ArtifactStore,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = _run(st)
    monkeypatch.setenv(SEED, "1")  # same code and inputs (none): same key, other bytes
    again = _run(st, force=True)
    assert again["make"]["key"] == first["make"]["key"]
    assert again["make"]["data"] != first["make"]["data"]
    assert again["make"]["outputs"] != first["make"]["outputs"]
    assert again["double"]["key"] != first["double"]["key"]  # its input changed


def test_an_entry_missing_or_resized_files_is_rewritten(st: ArtifactStore) -> None:
    first = _run(st)
    out = Path(st.artifact_paths(first["make"])[0]) / "array.npy"
    out.write_bytes(out.read_bytes()[:-8])  # truncated
    again = _run(st, force=True)
    assert again["make"]["data"] != first["make"]["data"]
    assert again["double"]["data"] == first["double"]["data"]  # intact: kept


def test_an_entry_that_failed_verification_is_rewritten_not_kept(st: ArtifactStore) -> None:
    """Same size, one byte flipped: sizes look right, so the forced rerun keeps the entry
    (loads check the bytes), but the next run finds it corrupt (a pipeline output is
    checksummed before it is reused), recomputes, and must
    write it again rather than keep the damaged bytes (``Claim.repair``)."""
    first = _run(st)
    out = Path(st.artifact_paths(first["double"])[0]) / "array.npy"
    raw = bytearray(out.read_bytes())
    raw[-1] ^= 0xFF
    out.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt"):
        again = _run(st)
    assert again["double"]["data"] != first["double"]["data"]
    assert again["make"] == first["make"]


def test_an_entry_whose_file_became_a_link_is_rewritten(st: ArtifactStore, tmp_path: Path) -> None:
    """Same name and size, but a symlink (to a copy outside the store): not kept."""
    first = _run(st)
    out = Path(st.artifact_paths(first["make"])[0]) / "array.npy"
    outside = tmp_path / "elsewhere.npy"
    outside.write_bytes(out.read_bytes())
    out.unlink()
    out.symlink_to(outside)
    again = _run(st, force=True)
    assert again["make"]["data"] != first["make"]["data"]
    assert not (Path(st.artifact_paths(again["make"])[0]) / "array.npy").is_symlink()
