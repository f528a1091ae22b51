"""Checkpoint: a directory on disk (never a large object in Ray's object store).

A dict checkpoint is a directory holding one cloudpickle file, so a dict round-trips
through a directory; metadata lives beside the data in ``.metadata.json``.

A checkpoint may also be a directory in a storage URI (``Checkpoint("s3://b/run/ckpt")``:
what a trainer whose storage is a URI reports, ``air.remote``). It is read straight from
there (``to_dict``, ``as_directory``, metadata) and only loaded when it is complete;
``path`` downloads it once into a local folder the object owns (removed once unused,
``air.scratch``), so code that reads files under ``path`` works unchanged.

A folder airflowdsl makes for a checkpoint object (``from_dict``, a load from the
artifact store) is removed once no checkpoint object uses it; a checkpoint loaded from
the store is fetched from the store again by a process it is sent to (``air.scratch``).
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

from airflowdsl.air import remote
from airflowdsl.air.scratch import Origin, Owned, fetch_owned, fetched
from airflowdsl.air.storage import Options, is_uri, options_for, resolve
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
    """A training checkpoint: a local directory plus JSON metadata (AIR-compatible API),
    or a directory in a storage URI (``uri``; opened with ``storage_options``, by default
    those of the run store it lies in, else this process's environment)."""

    #: where another process fetches this checkpoint from instead of using ``path`` (set
    #: on what the artifact store loads: ``air.scratch``)
    origin: Origin | None = None
    _owner: Owned | None = None  # the local folder this object owns (``air.scratch``)

    def __init__(self, path: str | os.PathLike[str], *, storage_options: Options = ()) -> None:
        raw = os.fspath(path)
        self.uri: str | None = raw.rstrip("/") if is_uri(raw) else None
        self.storage_options: Options = (tuple(storage_options) or options_for(raw)
                                         if self.uri else ())
        self._local: str | None = None if self.uri else os.path.abspath(raw)

    @property
    def path(self) -> str:
        """The local directory; a URI checkpoint is downloaded here once (complete)."""
        if self._local is None and self.origin is not None and self.uri is None:
            self._local, self._owner = fetch_owned(self.origin)  # sent here: from the store
        if self._local is None:  # a URI checkpoint: a copy this object owns (air.scratch)
            assert self.uri is not None
            self._local, self._owner = fetch_owned(remote.Directory(self.uri,
                                                                    self.storage_options))
        return self._local

    def _remote(self) -> bool:
        """Read from the URI: not downloaded into this process (yet)."""
        return self.uri is not None and self._local is None

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
        return owned(cls(path))

    @classmethod
    def from_checkpoint(cls: type[C], checkpoint: Checkpoint) -> C:
        """View any checkpoint as this (framework) checkpoint class."""
        if checkpoint.uri is None:
            view = cls(checkpoint.path)
        else:
            view = cls(checkpoint.uri, storage_options=checkpoint.storage_options)
            view._local = checkpoint._local
        view.origin, view._owner = checkpoint.origin, checkpoint._owner  # one folder, shared
        return view

    @classmethod
    def from_ray(cls: type[C], checkpoint: Any) -> C:
        """From a ``ray.train.Checkpoint`` (its files are copied to a local directory)."""
        return cls(checkpoint.to_directory(new_tempdir()))

    # --- access -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The dict this checkpoint was made from, or ``{relative path: bytes}`` of its files."""
        if self._remote():
            with self.as_directory() as local:
                return Checkpoint(local).to_dict()
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
        if self._remote():
            assert self.uri is not None
            return remote.download(self.uri, target, self.storage_options)
        if target != self.path:
            shutil.copytree(self.path, target, dirs_exist_ok=True)
        return target

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """The checkpoint as a local directory (no copy: it already is one; a URI
        checkpoint not downloaded yet: a temp copy, removed when the block ends)."""
        if self._local is None and self.origin is not None and self.uri is None:
            with fetched(self.origin) as local:  # sent here: a copy from the store
                yield local
            return
        if not self._remote():
            yield self.path
            return
        assert self.uri is not None
        with fetched(remote.Directory(self.uri, self.storage_options)) as local:
            yield local

    def to_ray(self) -> Any:
        import ray.train

        if self.uri is not None:
            fs, path = resolve(self.uri, self.storage_options)
            return ray.train.Checkpoint(path, filesystem=fs)
        return ray.train.Checkpoint.from_directory(self.path)

    # --- metadata -----------------------------------------------------------------
    def get_metadata(self) -> dict[str, Any]:
        if self.uri is not None:
            raw = remote.read_bytes(self.uri, METADATA_FILE, self.storage_options)
            return json.loads(raw) if raw else {}
        meta_path = os.path.join(self.path, METADATA_FILE)
        if not os.path.exists(meta_path):
            return {}
        with open(meta_path) as fh:
            meta: dict[str, Any] = json.load(fh)
        return meta

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        if self.uri is not None:
            remote.write_bytes(self.uri, METADATA_FILE, json.dumps(metadata).encode(),
                               self.storage_options)
            if self._local is None:
                return
        atomic_write_bytes(os.path.join(self.path, METADATA_FILE), json.dumps(metadata).encode(),
                           make_parents=True)

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        self.set_metadata({**self.get_metadata(), **metadata})

    # --- preprocessor (AIR: fitted by the trainer, applied again by every Predictor) ---
    def get_preprocessor(self) -> Any:
        """The fitted preprocessor the trainer stored in this checkpoint, or None."""
        if self._remote():
            assert self.uri is not None
            raw = remote.read_bytes(self.uri, PREPROCESSOR_FILE, self.storage_options)
            return cloudpickle.loads(raw) if raw is not None else None
        path = os.path.join(self.path, PREPROCESSOR_FILE)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as fh:
            return cloudpickle.load(fh)

    def set_preprocessor(self, preprocessor: Any) -> None:
        """Store ``preprocessor`` (None removes it) with the model in this directory."""
        if self.uri is not None:
            if preprocessor is None:
                remote.delete_file(self.uri, PREPROCESSOR_FILE, self.storage_options)
            else:
                remote.write_bytes(self.uri, PREPROCESSOR_FILE, cloudpickle.dumps(preprocessor),
                                   self.storage_options)
            if self._local is None:
                return
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
        return isinstance(other, Checkpoint) and other.location == self.location

    def __hash__(self) -> int:
        return hash(self.location)

    @property
    def location(self) -> str:
        """Where the checkpoint is: its URI, else its local directory (no download)."""
        return self.uri if self.uri is not None else self.path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.location!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.uri is not None or self.origin is not None:  # a download of this process
            state["_local"] = None  # means nothing elsewhere: the receiver loads it again
            state.pop("_owner", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "path" in state:  # pickled before URI checkpoints: a local directory
            state = {**state, "_local": state.pop("path"), "uri": None, "storage_options": ()}
        self.__dict__.update(state)


def owned(checkpoint: C) -> C:
    """``checkpoint``, owning its local folder: removed once no checkpoint object refers to
    it (garbage-collected) or at process exit (``air.scratch``). For folders airflowdsl
    made for it, never for one the user named."""
    checkpoint._owner = Owned(checkpoint.path)
    return checkpoint


def upload(checkpoint: Checkpoint, uri: str, options: Options, *,
           metadata: dict[str, Any]) -> Checkpoint:
    """Upload ``checkpoint`` to directory ``uri`` with ``metadata`` merged into its own,
    complete or not at all (``air.remote``); returns the URI checkpoint."""
    meta = {**checkpoint.get_metadata(), **metadata}
    with checkpoint.as_directory() as local:
        remote.upload(local, uri, options, unlisted=(METADATA_FILE, PREPROCESSOR_FILE))
    done = Checkpoint(uri, storage_options=options)
    done.set_metadata(meta)
    return done


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


__all__ = ["PREPROCESSOR_FILE", "Checkpoint", "new_tempdir", "owned", "persist_directory",
           "upload"]
