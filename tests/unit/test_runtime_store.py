"""Artifact store: serializers round-trip, checksums, atomic commit, URIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflowdsl.runtime.serializers import format_of
from airflowdsl.runtime.store import ArtifactStore, CorruptArtifact, default_root


class Thing:
    def __init__(self, v: int) -> None:
        self.v = v


@pytest.mark.parametrize("root_kind", ["path", "uri"])
def test_round_trip_each_format(tmp_path: Path, root_kind: str) -> None:
    root = str(tmp_path) if root_kind == "path" else f"file://{tmp_path}"
    st = ArtifactStore.open(root)
    values = [{"a": [1, 2.5, None], "b": "x"}, np.arange(6).reshape(2, 3),
              pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), Thing(3), (1, 2)]
    m = st.write("ab" * 20, values, pipeline="p", step="s")
    assert [o["format"] for o in m["outputs"]] == ["json", "numpy", "pandas", "pickle", "pickle"]
    loaded = [st.load(st.manifest("ab" * 20) or {}, i) for i in range(len(values))]
    assert loaded[0] == values[0]
    np.testing.assert_array_equal(loaded[1], values[1])
    pd.testing.assert_frame_equal(loaded[2], values[2])
    assert loaded[3].v == 3 and loaded[4] == (1, 2)
    assert st.verify(m) is None
    assert [e["key"] for e in st.entries()] == ["ab" * 20]


def test_checkpoint_is_stored_as_its_directory(tmp_path: Path) -> None:
    from airflowdsl.air.checkpoint import Checkpoint

    ckpt = Checkpoint.from_dict({"w": [1, 2, 3]})
    assert format_of(ckpt) == "checkpoint"
    st = ArtifactStore.open(tmp_path / "s")
    m = st.write("cd" * 20, [ckpt])
    back = st.load(m)
    assert isinstance(back, Checkpoint) and back.to_dict()["w"] == [1, 2, 3]


def test_json_only_for_exact_json_types() -> None:
    assert format_of({"a": [1, "x", None, True]}) == "json"
    assert format_of({1: "int key"}) == "pickle"
    assert format_of(float("nan")) == "pickle"
    assert format_of(np.array([object()])) == "pickle"


def test_corruption_is_detected(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    m = st.write("ef" * 20, [{"x": 1}])
    f = Path(st.artifact_paths(m)[0]) / "value.json"
    f.write_text(json.dumps({"x": 2}))  # same size, different bytes
    assert st.verify(m, deep=False) is None
    assert "checksum" in (st.verify(m) or "")
    with pytest.raises(CorruptArtifact):
        st.load(m)
    f.unlink()
    assert "missing" in (st.verify(m, deep=False) or "")


def test_uncommitted_write_is_invisible_and_rewrites_win(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    key = "12" * 20
    half = Path(st.entry(key)) / "deadbeef" / "out0"
    half.mkdir(parents=True)
    (half / "value.json").write_text("{")  # a writer killed before its manifest
    assert st.manifest(key) is None
    st.write(key, [1])
    st.write(key, [1])  # a second writer of the same key: harmless
    m = st.manifest(key)
    assert m is not None and st.load(m) == 1
    (Path(st.entry(key)) / "manifest.json").write_text("{not json")
    assert st.manifest(key) is None


def test_clear_by_pipeline(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path)
    st.write("aa" * 20, [1], pipeline="p1")
    st.write("bb" * 20, [2], pipeline="p2")
    assert st.clear(pipeline="p1") == 1
    assert [m["pipeline"] for m in st.entries()] == ["p2"]
    assert st.clear() == 1 and list(st.entries()) == []


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIRFLOWDSL_HOME", raising=False)
    assert default_root() == str(tmp_path / ".airflowdsl")
    monkeypatch.setenv("AIRFLOWDSL_HOME", "s3://bucket/x")
    assert default_root() == "s3://bucket/x"
    assert default_root("rel") == str(tmp_path / "rel")
