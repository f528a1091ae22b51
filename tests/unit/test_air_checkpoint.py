"""Checkpoint: a directory; dicts round-trip through it; metadata; Ray conversion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflowdsl.air import Checkpoint


def test_dict_round_trips_through_a_directory(tmp_path: Path) -> None:
    data = {"epoch": 3, "weights": [1.0, 2.0], "nested": {"a": (1, 2)}}
    ckpt = Checkpoint.from_dict(data)
    assert os.path.isdir(ckpt.path)
    assert ckpt.to_dict() == data
    copy = Checkpoint.from_directory(ckpt.to_directory(tmp_path / "copy"))
    assert copy.path == str(tmp_path / "copy")
    assert copy.to_dict() == data


def test_directory_checkpoint_to_dict_lists_its_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.bin").write_bytes(b"\x00\x01")
    (tmp_path / "sub" / "vocab.txt").write_text("a b")
    ckpt = Checkpoint.from_directory(tmp_path)
    ckpt.set_metadata({"kind": "files"})
    assert ckpt.to_dict() == {"model.bin": b"\x00\x01", os.path.join("sub", "vocab.txt"): b"a b"}
    with ckpt.as_directory() as path:
        assert Path(path, "model.bin").exists()


def test_metadata_set_update_and_copy(tmp_path: Path) -> None:
    ckpt = Checkpoint.from_dict({"x": 1})
    assert ckpt.get_metadata() == {}
    ckpt.set_metadata({"epoch": 1})
    ckpt.update_metadata({"loss": 0.5})
    assert ckpt.get_metadata() == {"epoch": 1, "loss": 0.5}
    copied = Checkpoint(ckpt.to_directory(tmp_path / "c"))
    assert copied.get_metadata() == {"epoch": 1, "loss": 0.5}
    assert copied.to_dict() == {"x": 1}  # metadata is not part of the data


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Checkpoint.from_directory(tmp_path / "missing")
    with pytest.raises(TypeError, match="takes a dict"):
        Checkpoint.from_dict([1, 2])  # type: ignore[arg-type]


def test_from_checkpoint_equality_and_fspath() -> None:
    class Framework(Checkpoint):
        pass

    ckpt = Checkpoint.from_dict({"x": 1})
    view = Framework.from_checkpoint(ckpt)
    assert isinstance(view, Framework) and view == ckpt and hash(view) == hash(ckpt)
    assert os.fspath(ckpt) == ckpt.path


def test_ray_train_checkpoint_round_trip() -> None:
    ray_train = pytest.importorskip("ray.train")
    ckpt = Checkpoint.from_dict({"epoch": 7})
    ckpt.set_metadata({"note": "hi"})
    as_ray = ckpt.to_ray()
    assert isinstance(as_ray, ray_train.Checkpoint)
    back = Checkpoint.from_ray(as_ray)
    assert back.path != ckpt.path
    assert back.to_dict() == {"epoch": 7}
    assert back.get_metadata() == {"note": "hi"}
