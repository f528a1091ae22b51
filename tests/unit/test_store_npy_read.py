"""Loading an array from a local store reads its file once, into a buffer that is checked
before the header is parsed (``serializers._read_npy_local``), and gives a writable array
as ``np.load`` did; ``load(verify=True)`` checksums every other output's files and leaves
this one's checksum to that read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airflowdsl.errors import CorruptArtifact
from airflowdsl.runtime import fsutil
from airflowdsl.runtime.store import ArtifactStore

KEY = "cd" * 20


@pytest.fixture()
def st(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.open(tmp_path / "store")


def _file(st: ArtifactStore, manifest: dict, i: int, name: str = "array.npy") -> Path:
    return Path(st.artifact_paths(manifest)[i]) / name


@pytest.mark.parametrize("arr", [
    np.arange(1000.0), np.zeros((0, 3)), np.array(3.5),
    np.asfortranarray(np.arange(12.0).reshape(3, 4)), np.arange(5, dtype=">i4"),
    np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]), np.array(["x", "yz"]),
], ids=["1d", "empty", "0d", "fortran", "big-endian", "structured", "str"])
@pytest.mark.parametrize("verify", [True, False])
def test_round_trip_writable(st: ArtifactStore, arr: np.ndarray, verify: bool) -> None:
    got = st.load(st.write(KEY, [arr]), 0, verify=verify)
    assert got.dtype == arr.dtype and got.shape == arr.shape
    assert got.flags.f_contiguous == arr.flags.f_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("verify", [True, False])
def test_damaged_array_is_refused(st: ArtifactStore, verify: bool) -> None:
    manifest = st.write(KEY, [np.arange(1000.0)])
    path = _file(st, manifest, 0)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArtifact):
        st.load(manifest, 0, verify=verify)
    path.write_bytes(bytes(raw) + b"\0")  # grown: sizes differ
    with pytest.raises(CorruptArtifact):
        st.load(manifest, 0, verify=verify)


def test_verify_still_checks_the_other_outputs(st: ArtifactStore) -> None:
    manifest = st.write(KEY, [np.arange(1000.0), {"a": 1}])
    path = _file(st, manifest, 1, "value.json")
    path.write_bytes(path.read_bytes().replace(b"1", b"2"))  # same size
    np.testing.assert_array_equal(st.load(manifest, 0, verify=False), np.arange(1000.0))
    with pytest.raises(CorruptArtifact, match="output 1: checksum mismatch"):
        st.load(manifest, 0, verify=True)


def test_verify_reads_the_loaded_file_once(st: ArtifactStore,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = st.write(KEY, [np.arange(1000.0), np.arange(10.0)])
    deep: list[str] = []
    real = fsutil.file_digest
    monkeypatch.setattr(fsutil, "file_digest",
                        lambda fs, path, algo="sha256": deep.append(path) or real(fs, path, algo))
    st.load(manifest, 0, verify=True)
    assert [Path(p).parent.name for p in deep] == ["out1"]  # out0: checked by its read
