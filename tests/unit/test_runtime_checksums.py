"""File checksums: new manifests use XXH3-128, manifests written before it (SHA-256, no
``checksum`` field) still load and verify; writes prepared in memory equal ``np.save``."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from airflowdsl.errors import CorruptArtifact
from airflowdsl.runtime import serializers
from airflowdsl.runtime.manifests import content_hash, output_content
from airflowdsl.runtime.store import ArtifactStore

KEY = "ab" * 20


def test_new_manifests_use_xxh3_and_verify(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    m = st.write(KEY, [np.arange(5.0), {"a": 1}, object.__class__])
    assert m["checksum"] == "xxh3_128"
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
