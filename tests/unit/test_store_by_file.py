"""A large array whose entry is committed in a plain local store goes downstream as a
reference to its file (``store.hand_on``), loaded as a read-only array over the file's
pages, checked against the manifest first (``serializers.read_mapped``); anything else,
or an entry not committed yet, goes as it is."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airflowdsl.errors import CorruptArtifact
from airflowdsl.runtime import store as store_mod
from airflowdsl.runtime.store import ArtifactStore, StoredOutput, hand_on, resolve

KEY = "ab" * 20


@pytest.fixture()
def st(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactStore:
    monkeypatch.setattr(store_mod, "BY_FILE_BYTES", 4096)  # small arrays, same rule
    monkeypatch.delenv("AIRFLOWDSL_STORE_SHARED", raising=False)
    return ArtifactStore.open(tmp_path / "store")


def _file(st: ArtifactStore, manifest: dict[str, Any]) -> Path:
    return Path(st.artifact_paths(manifest)[0]) / "array.npy"


@pytest.mark.parametrize("arr", [
    np.arange(10_000, dtype=np.float64),
    np.asfortranarray(np.arange(12_000, dtype=np.int32).reshape(40, 300)),
    np.arange(6_000, dtype=np.float32).reshape(2, 3, 1000),
], ids=["1d", "fortran", "3d"])
def test_committed_array_is_handed_on_by_file(st: ArtifactStore, arr: np.ndarray) -> None:
    manifest = st.write(KEY, [arr])
    (out,) = hand_on(st, manifest, [arr])
    assert isinstance(out, StoredOutput) and out.mapped
    got = resolve(pickle.loads(pickle.dumps(out)))  # as Ray ships it to a consumer
    assert type(got) is np.ndarray and not got.flags.writeable
    assert got.dtype == arr.dtype and got.shape == arr.shape
    assert got.flags.f_contiguous == arr.flags.f_contiguous
    np.testing.assert_array_equal(got, arr)


def test_what_stays_a_value(st: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    big, small = np.arange(10_000.0), np.arange(10.0)
    manifest = st.write(KEY, [big, small, b"x" * 10_000])
    outs = hand_on(st, manifest, [big, small, b"x" * 10_000])
    assert isinstance(outs[0], StoredOutput)
    assert outs[1] is small and outs[2] == b"x" * 10_000
    monkeypatch.setenv("AIRFLOWDSL_STORE_SHARED", "1")  # maybe a mount of other nodes
    assert hand_on(st, manifest, [big, small, b""])[0] is big


def test_an_entry_not_committed_yet_is_handed_on_as_value(st: ArtifactStore) -> None:
    arr = np.arange(10_000.0)
    pending = st.prepare(KEY, [arr])  # a write beside the consumers, not committed
    assert hand_on(st, pending.manifest, [arr])[0] is arr
    pending.commit()
    assert isinstance(hand_on(st, pending.manifest, [arr])[0], StoredOutput)
    other = st.write(KEY, [arr])  # the key's manifest now names another write folder
    assert hand_on(st, pending.manifest, [arr])[0] is arr
    assert isinstance(hand_on(st, other, [arr])[0], StoredOutput)


def test_damaged_file_is_not_loaded(st: ArtifactStore) -> None:
    arr = np.arange(10_000.0)
    manifest = st.write(KEY, [arr])
    (out,) = hand_on(st, manifest, [arr])
    path = _file(st, manifest)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # same size: only the checksum tells
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArtifact, match="checksum"):
        resolve(out)
    path.write_bytes(bytes(raw[:-8]))
    with pytest.raises(CorruptArtifact):
        resolve(out)
    path.unlink()
    with pytest.raises(OSError):
        resolve(out)


def test_header_is_checked_against_the_file(st: ArtifactStore) -> None:
    """A header whose shape does not match the data is refused even with a matching
    checksum (a manifest written for those bytes)."""
    from airflowdsl.runtime import serializers

    arr = np.arange(10_000.0)
    manifest = st.write(KEY, [arr])
    path = _file(st, manifest)
    raw = path.read_bytes().replace(b"(10000,)", b"(10001,)")
    path.write_bytes(raw)
    meta = dict(manifest["outputs"][0])
    meta["files"] = {"array.npy": [len(raw), serializers.digest_buffers([raw], "xxh3_128")]}
    with pytest.raises(CorruptArtifact, match="header"):
        serializers.read_mapped(str(path.parent), meta, checksum="xxh3_128")


def test_forced_rerun_in_process_hands_on_by_file(st: ArtifactStore) -> None:
    """The task body: a step whose output is already committed (dedupe) returns a
    reference (its first run committed in this process: no Ray, no write beside)."""
    import cloudpickle

    import airflowdsl as af
    from airflowdsl.runtime import tasks
    from airflowdsl.runtime.planner import make_plan
    from airflowdsl.runtime.summaries import unpack
    from tests.unit.inproc import run_inproc

    @af.step
    def ramp() -> np.ndarray:
        return np.arange(10_000.0)

    @af.pipeline
    def pipe():
        return ramp()

    compiled = pipe.compile()
    run_inproc(compiled, st)
    plan = make_plan(compiled, st, force=True)["ramp"]
    payload = tasks.Payload("ramp", cloudpickle.dumps(plan.spec.fn), plan.params, (), False, 1,
                            st.root, plan.key.digest, {"pipeline": compiled.name, "step": "ramp"},
                            cache=plan.ctl())
    out, summary = tasks.run_step(pickle.dumps(payload))
    assert isinstance(out, StoredOutput) and out.mapped
    assert unpack(summary)["manifest"]["data"] == out.manifest["data"]
    np.testing.assert_array_equal(resolve(out), np.arange(10_000.0))
