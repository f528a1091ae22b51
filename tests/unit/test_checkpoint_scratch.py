"""Local checkpoint copies airflowdsl makes are removed once unused, and a checkpoint
loaded from the artifact store is fetched from the store by a process it is sent to
(``air.scratch``; issue 12). A leak makes these fail: every check looks at the folders."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.errors import CorruptArtifact
from airflowdsl.runtime.store import ArtifactStore, StoredOutput

KEY = "cd" * 20
ROOT = Path(__file__).resolve().parents[2]


class Sub(Checkpoint):
    """A framework checkpoint class, as ``from_checkpoint`` views make them."""


def _gone(path: str) -> bool:
    gc.collect()
    return not os.path.exists(path)


def test_from_dict_folder_goes_with_the_last_checkpoint_object_that_uses_it() -> None:
    ckpt = Checkpoint.from_dict({"w": 1})
    folder = ckpt.path
    view = Sub.from_checkpoint(ckpt)
    del ckpt
    assert not _gone(folder)  # the view still uses it
    assert view.to_dict() == {"w": 1}
    del view
    assert _gone(folder)


def test_a_checkpoint_sent_by_its_path_keeps_its_folder_until_exit() -> None:
    ckpt = Checkpoint.from_dict({"w": 2})
    blob = pickle.dumps(ckpt)  # another process gets the path: nobody knows when it is done
    folder = ckpt.path
    del ckpt
    assert not _gone(folder)
    assert pickle.loads(blob).to_dict() == {"w": 2}


def test_store_loads_are_removed_when_unused_and_refetched_where_they_are_sent(
        tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path / "store")
    m = st.write(KEY, [Checkpoint.from_dict({"w": 3})])
    loaded = st.load(m, 0)
    assert isinstance(loaded.origin, StoredOutput)
    folder = loaded.path
    sent = pickle.loads(pickle.dumps(loaded))  # what an actor on another node receives
    assert sent.origin is not None
    with sent.as_directory() as local:  # fetched from the store for the block only
        assert local != folder and Checkpoint(local).to_dict() == {"w": 3}
    assert _gone(local)
    fetched = sent.path  # first use of path: a copy of its own, from the store
    assert fetched != folder and sent.to_dict() == {"w": 3}
    del loaded
    assert _gone(folder) and os.path.isdir(fetched)  # the receiver never used that folder
    del sent
    assert _gone(fetched)


def test_a_refetch_checks_the_files_against_the_manifest(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path / "store")
    m = st.write(KEY, [Checkpoint.from_dict({"w": 4})])
    sent = pickle.loads(pickle.dumps(st.load(m, 0)))
    stored = next(p for p in (tmp_path / "store").rglob("*.pkl"))
    stored.write_bytes(stored.read_bytes()[:-1] + b"\0")
    with pytest.raises(CorruptArtifact, match="checksum"):
        _ = sent.path


def test_a_worker_process_leaves_no_checkpoint_copies_behind(tmp_path: Path) -> None:
    """What a pipeline's worker processes do with checkpoints, then exit: no folder of a
    copy is left in their temp folder (garbage collection while running, exit after)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    script = textwrap.dedent(f"""
        import pickle
        from airflowdsl.air.checkpoint import Checkpoint
        from airflowdsl.runtime import serializers
        from airflowdsl.runtime.store import ArtifactStore

        st = ArtifactStore.open({str(tmp_path / "store")!r})
        for epoch in range(3):  # a training loop reporting a checkpoint per epoch
            ckpt = Checkpoint.from_dict({{"epoch": epoch}})
        m = st.write({KEY!r}, [ckpt])
        with serializers.private_copies() as copies:  # a step's task
            used, passed_on = st.load(m, 0), st.load(m, 0)
            copies.keep((passed_on,))
        kept = pickle.dumps(Checkpoint.from_dict({{"sent": 1}}))  # sent by path
        actor = pickle.loads(pickle.dumps(used))  # an actor's copy from the store
        assert actor.to_dict() == {{"epoch": 2}}
        print("ok")
    """)
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    left = [str(p) for p in tmp.rglob("*") if p.is_file()]
    assert left == []
