"""Local copies of checkpoints that nobody else owns: when they are removed, and how a
checkpoint loaded from an artifact store is loaded again in another process.

- **Owned folders.** A folder airflowdsl makes for a checkpoint object -- ``Checkpoint.from_dict``,
  a checkpoint loaded from the artifact store, one fetched again from the store in
  another process -- belongs to that object (and to the views ``from_checkpoint`` makes
  of it): it is removed when the last of them is garbage-collected, or at process exit.
  A checkpoint sent to another process by its *path* (pickled without an ``origin``)
  keeps its folder until this process exits: nobody can tell when the receiver is done.
- **Origins.** A checkpoint loaded from the store carries where it came from
  (``Checkpoint.origin``: ``runtime.store.StoredOutput``). Pickled, it leaves its local
  folder behind: the receiving process -- a BatchPredictor actor, any Ray task on any
  node -- fetches the files from the store itself, checked against the manifest, on
  first use of ``path`` (a copy it owns) or for the length of ``as_directory()``.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Protocol

#: the temp-folder prefix of checkpoint copies (``tempfile.gettempdir()``)
PREFIX = "airflowdsl-ckpt-"


class Origin(Protocol):
    """Where a checkpoint's files can be copied from again (an artifact store entry)."""

    def fetch(self, target: str) -> str:
        """Copy the files into local folder ``target`` (checked); return ``target``."""
        ...


class Owned:
    """A local folder removed when this object is garbage-collected (no checkpoint refers
    to it any more) or at process exit; after ``share`` only at process exit.

    ``__del__`` and one ``atexit`` handler, not ``weakref.finalize``: at exit, finalize
    walks its global registry while daemon threads (Ray's) may still drop objects that
    have one ("dictionary changed size during iteration"), and then runs none."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.shared = False
        _LIVE.add(path)

    def share(self) -> None:
        """Another process got the folder's path: keep it until this process exits."""
        self.shared = True

    def __del__(self) -> None:
        if not self.shared:
            _LIVE.discard(self.path)
            with contextlib.suppress(Exception):  # also during interpreter shutdown
                shutil.rmtree(self.path, ignore_errors=True)

    def __reduce__(self) -> tuple[type[None], tuple[()]]:
        self.share()  # pickled with its path: unpickles as None (the receiver owns nothing)
        return type(None), ()


#: owned folders not removed yet (removed at exit)
_LIVE: set[str] = set()


@atexit.register
def _remove_all() -> None:
    for path in list(_LIVE):
        shutil.rmtree(path, ignore_errors=True)


def fetch_owned(origin: Origin) -> tuple[str, Owned]:
    """A new local copy of ``origin`` and its owner (removed once unused)."""
    local = tempfile.mkdtemp(prefix=PREFIX)
    owner = Owned(local)
    origin.fetch(local)
    return local, owner


@contextlib.contextmanager
def fetched(origin: Origin) -> Iterator[str]:
    """A local copy of ``origin`` for the block, removed when it ends."""
    local = tempfile.mkdtemp(prefix=PREFIX)
    try:
        yield origin.fetch(local)
    finally:
        shutil.rmtree(local, ignore_errors=True)


__all__ = ["PREFIX", "Origin", "Owned", "fetch_owned", "fetched"]
