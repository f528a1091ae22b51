"""A store safe to share: tampered manifests and files, gc, one computation per key
across processes."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflowdsl.air import Checkpoint
from airflowdsl.errors import CorruptArtifact
from airflowdsl.runtime.cutoff import lock_path
from airflowdsl.runtime.gc import collect
from airflowdsl.runtime.lease import Lease
from airflowdsl.runtime.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]
KEY = "ab" * 20


class Boom:
    """Unpickling this touches a marker file: proof that a tampered pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


def _write(st: ArtifactStore, tmp: Path, fmt: str) -> dict[str, Any]:
    ckpt = tmp / "ckpt"
    ckpt.mkdir(exist_ok=True)
    (ckpt / "model.bin").write_bytes(b"weights" * 10)
    value: Any = {"json": {"a": [1, 2]}, "pickle": {1: object.__new__(Path)},
                  "numpy": np.arange(6.0), "pandas": pd.DataFrame({"x": [1, 2, 3]}),
                  "checkpoint": Checkpoint.from_directory(ckpt)}[fmt]
    if fmt == "pickle":
        value = {1: {2, 3}}  # not JSON: stored with cloudpickle
    return st.write(KEY, [value], pipeline="p", step="s")


def _manifest_path(st: ArtifactStore) -> Path:
    return Path(st.entry(KEY)) / "manifest.json"


def _data_file(st: ArtifactStore, m: dict[str, Any]) -> Path:
    out = Path(st.artifact_paths(m)[0])
    return out / sorted(m["outputs"][0]["files"])[0]


def _tamper_manifest(st: ArtifactStore, edit: Any) -> None:
    path = _manifest_path(st)
    m = json.loads(path.read_text())
    edit(m)
    path.write_text(json.dumps(m))


MANIFEST_TAMPERS = {
    "data-escapes": lambda m: m.update(data="../../../../etc"),
    "file-escapes": lambda m: m["outputs"][0].update(files={"../../../x": [1, "0" * 32]}),
    "absolute-file": lambda m: m["outputs"][0].update(files={"/etc/passwd": [1, "0" * 32]}),
    "unknown-format": lambda m: m["outputs"][0].update(format="exec"),
    "bad-checksum-field": lambda m: next(iter(m["outputs"][0]["files"].values())).__setitem__(1, 7),
    "other-key": lambda m: m.update(key="cd" * 20),
    "no-outputs": lambda m: m.update(outputs=[]),
}


@pytest.mark.parametrize("fmt", ["json", "pickle", "numpy", "pandas", "checkpoint"])
@pytest.mark.parametrize("tamper", sorted(MANIFEST_TAMPERS))
def test_tampered_manifest_is_rejected(tmp_path: Path, fmt: str, tamper: str) -> None:
    st = ArtifactStore.open(tmp_path / "s")
    _write(st, tmp_path, fmt)
    _tamper_manifest(st, MANIFEST_TAMPERS[tamper])
    with pytest.warns(UserWarning, match="manifest rejected"):
        assert st.manifest(KEY) is None  # the planner recomputes


@pytest.mark.parametrize("fmt", ["json", "pickle", "numpy", "pandas", "checkpoint"])
@pytest.mark.parametrize("how", ["flip", "truncate", "replace-with-pickle-bomb", "extend"])
def test_tampered_file_is_never_parsed(tmp_path: Path, fmt: str, how: str) -> None:
    st = ArtifactStore.open(tmp_path / "s")
    m = _write(st, tmp_path, fmt)
    target, marker = _data_file(st, m), tmp_path / "BOOM"
    data = target.read_bytes()
    if how == "flip":
        data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1:]
    elif how == "truncate":
        data = data[:len(data) // 2]
    elif how == "extend":
        data += b"\0"
    else:
        bomb = pickle.dumps(Boom(str(marker)))
        data = (bomb + b"." * len(data))[:max(len(data), len(bomb))]
    target.write_bytes(data)
    with pytest.raises(CorruptArtifact):
        st.load(m, 0, verify=False)  # even without the pre-pass: the parsed bytes are checked
    assert st.verify(m) is not None
    assert not marker.exists()


def test_symlink_out_of_the_store_is_rejected(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path / "s")
    m = _write(st, tmp_path, "json")
    target = _data_file(st, m)
    outside = tmp_path / "outside.json"
    shutil.copy(target, outside)
    target.unlink()
    target.symlink_to(outside)
    assert "outside the store" in (st.verify(m) or "")
    with pytest.raises(CorruptArtifact, match="outside"):
        st.load(m, 0, verify=False)


def test_a_linked_directory_inside_an_output_is_resolved(tmp_path: Path) -> None:
    """Only names with a symlink among their components are resolved (``escapes``): a
    link at any depth below the output's directory is followed, one inside it passes."""
    from airflowdsl.runtime.manifests import escapes

    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "f.bin").write_bytes(b"x")
    (out / "a" / "g.bin").write_bytes(b"y")
    files = {"a/g.bin": [1, "0" * 32], "a/b/f.bin": [1, "0" * 32]}
    (out / "a" / "b").symlink_to(out / "a")  # a link that stays inside
    (out / "a" / "f.bin").write_bytes(b"x")
    assert escapes(str(out), files) is None
    (out / "a" / "b").unlink()
    (out / "a" / "b").symlink_to(outside)  # the same name, now leading outside
    assert escapes(str(out), files) == "a/b/f.bin"


def test_checkpoint_type_comes_from_the_registry_only(tmp_path: Path) -> None:
    mod = tmp_path / "sneaky_mod_x1.py"
    marker = tmp_path / "IMPORTED"
    mod.write_text(f"open({str(marker)!r}, 'w').close()\nclass C:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        st = ArtifactStore.open(tmp_path / "s")
        _write(st, tmp_path, "checkpoint")
        for bad in ("sneaky_mod_x1.C", "os.system", "builtins.eval", "airflowdsl.runtime.gc.collect"):
            _tamper_manifest(st, lambda m, b=bad: m["outputs"][0].update(type=b))
            m = st.manifest(KEY)
            assert m is not None
            with pytest.raises(CorruptArtifact, match="not a registered artifact class"):
                st.load(m, 0)
        assert not marker.exists()
    finally:
        sys.path.remove(str(tmp_path))


def test_checkpoints_are_private_copies(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path / "s")
    m = _write(st, tmp_path, "checkpoint")
    loaded = st.load(m, 0)
    assert isinstance(loaded, Checkpoint)
    (Path(loaded.path) / "model.bin").write_bytes(b"scribbled")
    assert st.verify(m) is None
    assert (Path(st.load(m, 0).path) / "model.bin").read_bytes() == b"weights" * 10


def test_gc_removes_orphans_and_expired_keeps_the_rest(tmp_path: Path) -> None:
    st = ArtifactStore.open(tmp_path / "s")
    m = st.write(KEY, [[1]])
    entry = Path(st.entry(KEY))
    orphan_old, orphan_new = entry / "000000000000", entry / "111111111111"
    for d in (orphan_old, orphan_new):
        (d / "out0").mkdir(parents=True)
    old = time.time() - 7200
    os.utime(orphan_old, (old, old))
    expired = "cd" * 20
    st.write(expired, [[2]], expires_after=10.0)
    busy = "ef" * 20
    st.write(busy, [[3]], expires_after=0.0)
    with Lease(lock_path(st, busy)):
        report = collect(st, grace_s=60, now=time.time() + 3600)
    assert report.expired == [expired] and report.skipped_busy == [busy]
    assert not orphan_old.exists() and orphan_new.exists() is False  # both older than grace now
    assert st.manifest(KEY) == m and st.load(m, 0) == [1]
    assert st.manifest(expired) is None and st.manifest(busy) is not None
    # a fresh orphan (a write in progress) is kept with the real clock
    (entry / "222222222222" / "out0").mkdir(parents=True)
    collect(st, grace_s=60)
    assert (entry / "222222222222").exists()


PIPE = '''
import os, time
import airflowdsl as af

LOG = {log!r}

def _note(name):
    with open(LOG, "a") as f:
        f.write(name + "\\n")
    time.sleep(0.3)

@af.ingest
def src() -> list:
    _note("src")
    return [1, 2, 3]

@af.preprocess
def double(xs: list) -> list:
    _note("double")
    return [x * 2 for x in xs]

@af.preprocess
def square(xs: list) -> list:
    _note("square")
    return [x * x for x in xs]

@af.predict
def total(a: list, b: list) -> dict:
    _note("total")
    return {{"t": float(sum(a) + sum(b))}}

@af.pipeline
def four():
    s = src()
    return total(double(s), square(s))
'''

DRIVER = '''
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import four_pipe
from airflowdsl.runtime.store import ArtifactStore
from tests.unit.inproc import run_inproc
open(os.path.join(sys.argv[1], "ready-%d" % os.getpid()), "w").close()
while len([f for f in os.listdir(sys.argv[1]) if f.startswith("ready-")]) < 4:
    time.sleep(0.02)  # all four plan at once: nothing is cached yet
print(json.dumps(run_inproc(four_pipe.four.compile(), ArtifactStore.open(sys.argv[2]))))
'''


def test_four_processes_compute_each_step_once(tmp_path: Path) -> None:
    log = tmp_path / "computed.log"
    (tmp_path / "four_pipe.py").write_text(textwrap.dedent(PIPE.format(log=str(log))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), str(tmp_path / "s")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    computed = log.read_text().split()
    assert sorted(computed) == ["double", "square", "src", "total"], computed
    # every process planned to run src; three waited on its lease and reused the result
    assert sorted(r["src"] for r in results) == ["computed", "served", "served", "served"]
    assert sum(r["total"] == "computed" for r in results) == 1


def test_a_wait_for_another_holder_is_reported_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from airflowdsl.runtime import lease as lease_mod

    monkeypatch.setattr(lease_mod, "WAIT_NOTE_S", 0.2)
    monkeypatch.setattr(lease_mod, "WAIT_REPEAT_S", 0.3)
    path = str(tmp_path / "locks" / "k.lock")
    heard: list[tuple[float, dict[str, object] | None]] = []
    held = lease_mod.Lease(path)
    assert held.acquire()  # another open file description: flock blocks the second
    waiter = lease_mod.Lease(path, on_wait=lambda s, who: heard.append((s, who)))
    t = threading.Thread(target=waiter.acquire)
    t.start()
    time.sleep(0.9)
    assert waiter.fd is None  # still waiting
    held.release()
    t.join(timeout=10)
    assert waiter.fd is not None
    waiter.release()
    assert 2 <= len(heard) <= 3 and heard[0][0] >= 0.2
    assert heard[0][1] is not None and heard[0][1]["pid"] == os.getpid()
