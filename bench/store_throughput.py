"""Artifact throughput: an S3 store (a moto server on 127.0.0.1) vs a local store.

What one step's task does with its outputs, without Ray: ``ArtifactStore.write`` (files
or objects, then the manifest) and ``ArtifactStore.load`` (bytes checked against the
manifest) of a numpy array (one object: a multipart upload on S3) and of a checkpoint
directory (several files: ``pyarrow.fs.copy_files`` up, one GET per file down), on a plain
local root, a ``file://`` root (pyarrow's LocalFileSystem) and an ``s3://`` root. Median
of ``--reps``; MB/s over the artifact's bytes; the last column compares with the local
store in the same run.

    python bench/store_throughput.py [--mb 64] [--reps 3]

moto keeps objects in memory in this process (its server thread shares the GIL with
the client), so the S3 row is a lower bound of an S3-compatible server's speed on this
machine, not of S3's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflowdsl.air import Checkpoint  # noqa: E402
from airflowdsl.runtime.store import ArtifactStore  # noqa: E402
from tests.moto_s3 import moto_s3  # noqa: E402


def _checkpoint(mb: int, files: int, where: str) -> Checkpoint:
    path = Path(where) / "ckpt"
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(files):
        (path / f"shard-{i}.bin").write_bytes(rng.bytes(mb * 2**20 // files))
    return Checkpoint.from_directory(path)


def _time(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(st: ArtifactStore, value: Any, reps: int) -> tuple[float, float]:
    """(write s, load s): a fresh key per write; loads of the last one."""
    manifests = []

    def write() -> None:
        manifests.append(st.write(uuid.uuid4().hex + "0" * 8, [value]))

    w = _time(write, reps)
    loaded: list[Any] = []
    r = _time(lambda: loaded.append(st.load(manifests[-1], 0, verify=False)), reps)
    for c in loaded:  # private checkpoint copies: remove them as we go
        if isinstance(c, Checkpoint):
            shutil.rmtree(c.path, ignore_errors=True)
    return w, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="airflowdsl-bench-")
    try:
        array = np.random.default_rng(1).random(args.mb * 2**20 // 8)
        ckpt = _checkpoint(args.mb, 8, tmp)
        values = {"numpy array (1 object)": array, "checkpoint (8 files)": ckpt}
        rows: list[tuple[str, str, float, float]] = []
        with moto_s3() as s3:
            stores = {"local path": ArtifactStore.open(f"{tmp}/local"),
                      "file:// URI": ArtifactStore.open(f"file://{tmp}/uri"),
                      "s3:// (moto)": ArtifactStore.open(s3.uri("bench"))}
            for what, value in values.items():
                for name, st in stores.items():
                    w, r = measure(st, value, args.reps)
                    rows.append((what, name, w, r))
        print(f"{args.mb} MB per artifact, median of {args.reps}; python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs, load {open('/proc/loadavg').read().split()[0]}")
        print(f"{'artifact':24} {'store':14} {'write s':>8} {'MB/s':>7} {'load s':>8} {'MB/s':>7}"
              f" {'vs local w/l':>13}")
        base: dict[str, tuple[float, float]] = {}
        for what, name, w, r in rows:
            base.setdefault(what, (w, r))
            bw, br = base[what]
            print(f"{what:24} {name:14} {w:8.3f} {args.mb / w:7.0f} {r:8.3f} {args.mb / r:7.0f}"
                  f" {w / bw:6.1f}x/{r / br:4.1f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
