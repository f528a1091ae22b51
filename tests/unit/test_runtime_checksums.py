"""File checksums: new manifests use XXH3-128 over 8 MiB pieces (``xxh3_128t``), manifests
written before it (plain XXH3-128; SHA-256, no ``checksum`` field) still load and verify;
writes prepared in memory equal ``np.save``."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import xxhash

from airflowdsl.errors import CorruptArtifact
from airflowdsl.runtime import fsutil, serializers
from airflowdsl.runtime.manifests import content_hash, output_content
from airflowdsl.runtime.store import ArtifactStore

KEY = "ab" * 20


def test_new_manifests_use_xxh3_and_verify(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    m = st.write(KEY, [np.arange(5.0), {"a": 1}, object.__class__])
    assert m["checksum"] == "xxh3_128t"
    assert st.verify(m) is None
    assert st.load(m, 0).tolist() == [0, 1, 2, 3, 4] and st.load(m, 1) == {"a": 1}
    f = next((tmp_path / "artifacts").rglob("array.npy"))
    f.write_bytes(f.read_bytes()[:-1] + b"\x01")  # same size, one byte changed
    assert st.verify(m) is not None
    with pytest.raises(CorruptArtifact):
        st.load(m, 0, verify=False)


def _as_sha256(st: ArtifactStore, m: dict) -> dict:
    """The manifest as airflowdsl wrote it before XXH3 (SHA-256, no checksum field)."""
    old = {k: v for k, v in m.items() if k != "checksum"}
    base = Path(st.entry(KEY)) / m["data"]
    for i, out in enumerate(old["outputs"]):
        for rel in out["files"]:
            data = (base / f"out{i}" / rel).read_bytes()
            out["files"][rel] = [len(data), hashlib.sha256(data).hexdigest()[:32]]
        out["content"] = content_hash(out)
    (Path(st.entry(KEY)) / "manifest.json").write_text(json.dumps(old))
    return old


def test_sha256_manifests_written_before_still_load(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    old = _as_sha256(st, st.write(KEY, [np.arange(3.0)]))
    m = st.manifest(KEY)
    assert m is not None and "checksum" not in m and st.verify(m) is None
    assert st.load(m, 0).tolist() == [0.0, 1.0, 2.0]
    # content hashes from SHA-256 manifests are unchanged; XXH3 ones differ from them
    assert output_content(m, None) == content_hash(old["outputs"][0])
    assert st.write(KEY, [np.arange(3.0)])["outputs"][0]["content"] != output_content(m, None)


def test_unknown_checksum_is_rejected(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    m = st.write(KEY, [1])
    path = Path(st.entry(KEY)) / "manifest.json"
    path.write_text(json.dumps({**m, "checksum": "md5"}))
    with pytest.warns(UserWarning, match="unknown checksum"):
        assert st.manifest(KEY) is None


@pytest.mark.parametrize("arr", [np.arange(10.0), np.asfortranarray(np.ones((3, 4))),
                                 np.ones((4, 4))[::2], np.array(3.0), np.zeros((0, 3)),
                                 np.array(["2020-01-01"], dtype="datetime64[D]")])
def test_encoded_numpy_is_what_np_save_writes(arr: np.ndarray) -> None:
    encoded = serializers.encode(arr)
    assert encoded is not None
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    assert b"".join(bytes(b) for b in encoded[1]["array.npy"]) == buf.getvalue()


def test_prepared_write_is_invisible_until_committed(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    pending = st.prepare(KEY, [np.arange(4.0)])
    assert pending.manifest["outputs"][0]["content"] and st.manifest(KEY) is None
    pending.commit()
    assert st.manifest(KEY) == pending.manifest


PIECE = fsutil.PIECE


@pytest.mark.parametrize("n", [0, 1, PIECE - 129, PIECE - 128, PIECE, 2 * PIECE + 1,
                               5 * PIECE + 12345])
def test_pieces_summed_in_parallel_equal_the_sum_fed_in_order(n: int) -> None:
    rng = np.random.default_rng(n)
    head, data = b"H" * 128, rng.integers(0, 256, n, dtype=np.uint8)
    whole = head + data.tobytes()
    tree, i = fsutil.Tree(), 0
    while i < len(whole):  # as a file is read: in pieces of any size
        k = int(rng.integers(1, 3 * PIECE))
        tree.update(whole[i:i + k])
        i += k
    summed = fsutil.digest_buffers([head, data])  # a header and the array: as prepared
    assert summed == tree.hexdigest() and len(summed) == 32
    # one piece or less is plain XXH3-128; more is not (and differs from it)
    assert (summed == xxhash.xxh3_128_hexdigest(whole)) == (len(whole) <= PIECE)
    if len(whole) > PIECE:  # one flipped byte anywhere changes it
        flipped = bytearray(whole)
        flipped[len(whole) * 3 // 4] ^= 1
        assert fsutil.digest_buffers([bytes(flipped)]) != summed


def test_plain_xxh3_manifests_written_before_still_load(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    big = np.arange(3 * PIECE // 8, dtype=np.float64)  # more than one piece: sums differ
    m = st.write(KEY, [big])
    base = Path(st.entry(KEY)) / m["data"] / "out0"
    old = {**json.loads(json.dumps(m)), "checksum": "xxh3_128"}
    for rel in old["outputs"][0]["files"]:
        data = (base / rel).read_bytes()
        old["outputs"][0]["files"][rel] = [len(data), xxhash.xxh3_128_hexdigest(data)]
    old["outputs"][0]["content"] = content_hash(old["outputs"][0], "xxh3_128")
    (Path(st.entry(KEY)) / "manifest.json").write_text(json.dumps(old))
    again = st.manifest(KEY)
    assert again is not None and again["checksum"] == "xxh3_128" and st.verify(again) is None
    assert np.array_equal(st.load(again, 0), big)
    assert old["outputs"][0]["files"] != m["outputs"][0]["files"]
