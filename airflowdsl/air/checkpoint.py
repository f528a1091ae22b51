"""Checkpoint: a directory on disk (never a large object in Ray's object store).

A dict checkpoint is a directory holding one cloudpickle file, so a dict round-trips
through a directory; metadata lives beside the data in ``.metadata.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, TypeVar

import cloudpickle

from airflowdsl.fileio import atomic_write_bytes

DICT_FILE = "_dict_checkpoint.pkl"
METADATA_FILE = ".metadata.json"
#: the fitted ``ray.data.preprocessors`` object a trainer stored with the model (AIR)
PREPROCESSOR_FILE = "preprocessor.pkl"

C = TypeVar("C", bound="Checkpoint")


def new_tempdir() -> str:
    """A new empty local directory for a checkpoint (``airflowdsl-ckpt-*`` in the temp dir)."""
    return tempfile.mkdtemp(prefix="airflowdsl-ckpt-")


class Checkpoint:
    """A training checkpoint: a local directory plus JSON metadata (AIR-compatible API)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))

    # --- construction -------------------------------------------------------------
    @classmethod
    def from_directory(cls: type[C], path: str | os.PathLike[str]) -> C:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"checkpoint directory {os.fspath(path)!r} does not exist")
        return cls(path)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise TypeError(f"Checkpoint.from_dict takes a dict, got {type(data).__name__}")
        path = new_tempdir()
        atomic_write_bytes(os.path.join(path, DICT_FILE), cloudpickle.dumps(data), make_parents=True)
        return cls(path)

    @classmethod
    def from_checkpoint(cls: type[C], checkpoint: Checkpoint) -> C:
        """View any checkpoint as this (framework) checkpoint class."""
        return cls(checkpoint.path)

    @classmethod
    def from_ray(cls: type[C], checkpoint: Any) -> C:
        """From a ``ray.train.Checkpoint`` (its files are copied to a local directory)."""
        return cls(checkpoint.to_directory(new_tempdir()))

    # --- access -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The dict this checkpoint was made from, or ``{relative path: bytes}`` of its files."""
        dict_path = os.path.join(self.path, DICT_FILE)
        if os.path.exists(dict_path):
            with open(dict_path, "rb") as fh:
                data: dict[str, Any] = cloudpickle.load(fh)
            return data
        out: dict[str, Any] = {}
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, self.path)
                if rel != METADATA_FILE:
                    with open(full, "rb") as fh:
                        out[rel] = fh.read()
        return out

    def to_directory(self, path: str | os.PathLike[str] | None = None) -> str:
        """Copy the checkpoint's files into ``path`` (a new temp dir when None)."""
        target = os.path.abspath(os.fspath(path)) if path is not None else new_tempdir()
        if target != self.path:
            shutil.copytree(self.path, target, dirs_exist_ok=True)
        return target

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """The checkpoint as a local directory (no copy: it already is one)."""
        yield self.path

    def to_ray(self) -> Any:
        import ray.train

        return ray.train.Checkpoint.from_directory(self.path)

    # --- metadata -----------------------------------------------------------------
    def get_metadata(self) -> dict[str, Any]:
        meta_path = os.path.join(self.path, METADATA_FILE)
        if not os.path.exists(meta_path):
            return {}
        with open(meta_path) as fh:
            meta: dict[str, Any] = json.load(fh)
        return meta

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        atomic_write_bytes(os.path.join(self.path, METADATA_FILE), json.dumps(metadata).encode(),
                           make_parents=True)

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        self.set_metadata({**self.get_metadata(), **metadata})

    # --- preprocessor (AIR: fitted by the trainer, applied again by every Predictor) ---
    def get_preprocessor(self) -> Any:
        """The fitted preprocessor the trainer stored in this checkpoint, or None."""
        path = os.path.join(self.path, PREPROCESSOR_FILE)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as fh:
            return cloudpickle.load(fh)

    def set_preprocessor(self, preprocessor: Any) -> None:
        """Store ``preprocessor`` (None removes it) with the model in this directory."""
        path = os.path.join(self.path, PREPROCESSOR_FILE)
        if preprocessor is None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return
        atomic_write_bytes(path, cloudpickle.dumps(preprocessor), make_parents=True)

    # --- dunder -------------------------------------------------------------------
    def __fspath__(self) -> str:
        return self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r})"


def persist_directory(src: str, dest: str) -> str:
    """Copy ``src`` to ``dest`` atomically (temp sibling + rename); returns ``dest``."""
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    shutil.copytree(src, tmp, dirs_exist_ok=True)
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


__all__ = ["PREPROCESSOR_FILE", "Checkpoint", "new_tempdir", "persist_directory"]
