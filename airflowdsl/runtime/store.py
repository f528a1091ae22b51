"""Content-addressed artifact store on ``pyarrow.fs`` (local path or URI).

Layout under the root::

    artifacts/<key[:2]>/<key>/manifest.json        commit marker, written last
    artifacts/<key[:2]>/<key>/<write-id>/out<i>/   one directory per output

A writer puts its files under a fresh ``<write-id>`` directory and only then
writes ``manifest.json`` atomically (temp + rename locally; a single PUT on
object stores). A killed writer leaves at most an unreferenced directory,
never a manifest that points at half an artifact; two writers of one key
both leave complete copies and the last manifest wins (``runtime.cutoff`` takes a
per-key lock, so on a local root one process computes a key while the others wait
and reuse it). The manifest lists every file with its size and sha256 and each
output's content hash (``outputs[i]["content"]``, from those checksums: what early
cutoff keys on). Checksums are XXH3-128 (``manifest["checksum"]``; manifests without
the field are SHA-256 and still verify with it: ``fsutil.CHECKSUM``).

Manifests are not trusted: one that is malformed, names a path outside its entry or
an unknown format is treated as absent (the step is recomputed, with a warning), and
every load checks the bytes it parses against the manifest (``serializers.read``).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from airflowdsl.errors import CorruptArtifact, StoreError
from airflowdsl.runtime import fsutil, serializers
from airflowdsl.runtime.manifests import (
    KEY,
    Manifest,
    checksum_of,
    content_hash,
    escapes,
    manifest_problem,
)

if TYPE_CHECKING:
    import pyarrow.fs as pafs

DEFAULT_ROOT = ".airflowdsl"


def default_root(store: str | os.PathLike[str] | None = None) -> str:
    """``store`` if given, else ``$AIRFLOWDSL_STORE``, else ``$AIRFLOWDSL_HOME``, else
    ``./.airflowdsl``: a local path or a URI (``s3://bucket/prefix``, ``gs://``, ``file://``)."""
    root = os.fspath(store) if store is not None else (
        os.environ.get("AIRFLOWDSL_STORE") or os.environ.get("AIRFLOWDSL_HOME", DEFAULT_ROOT))
    return root if "://" in root else os.path.abspath(os.path.expanduser(root))


def _local(root: str) -> str | None:
    """``fsutil.local_path(root)``; remembered for an absolute root (no working directory
    involved): a cached run asks ~8 times per step."""
    return _local_abs(root) if root.startswith("/") else fsutil.local_path(root)


@lru_cache(maxsize=64)
def _local_abs(root: str) -> str | None:
    return fsutil.local_path(root)


@dataclass(frozen=True)
class ArtifactStore:
    """Artifacts of one store root. Cheap to create and to pickle into tasks.

    ``options``: what a task needs to open the root as the driver did (``s3://``: the
    endpoint, region and static credentials of the driver's environment,
    ``fsutil.store_options``); filled by ``open``, carried by the object (not shown by
    ``repr``), so pass the store object, not its root, to tasks."""

    root: str
    options: fsutil.Options = field(default=(), repr=False)

    @classmethod
    def open(cls, store: str | os.PathLike[str] | None = None) -> ArtifactStore:
        """The store ``store`` names (``default_root``), with this process's options."""
        root = default_root(store)
        return cls(root, fsutil.store_options(root))

    @classmethod
    def of(cls, store: str | os.PathLike[str] | ArtifactStore) -> ArtifactStore:
        """``store`` itself when it is a store object, else ``open(store)``."""
        return store if isinstance(store, ArtifactStore) else cls.open(store)

    @property
    def fs(self) -> pafs.FileSystem:
        return fsutil.resolve(self.root, self.options)[0]

    @property
    def base(self) -> str:
        local = _local(self.root)
        return local if local is not None else fsutil.resolve(self.root, self.options)[1]

    @property
    def is_remote(self) -> bool:
        """An object store or another non-local filesystem (``s3://``, ``gs://``, ...)."""
        return not self.is_local

    def check_cluster(self, nodes: int) -> None:
        """Refuse a local-disk root when Ray has more than one node: tasks on other nodes
        would write to and read from their own disks. A ``file://`` URI or
        ``AIRFLOWDSL_STORE_SHARED=1`` says the path is a mount every node shares."""
        if (nodes <= 1 or _local(self.root) is None
                or os.environ.get("AIRFLOWDSL_STORE_SHARED") == "1"):
            return
        raise StoreError(
            f"the artifact store {self.root} is a local directory, but Ray has {nodes} nodes:"
            " steps on other nodes would write to their own disks. Use an object store"
            " (--store s3://bucket/prefix, gs://..., AIRFLOWDSL_STORE), or, if this path is"
            f" a mount every node shares, say so with --store file://{self.root} or"
            " AIRFLOWDSL_STORE_SHARED=1")

    @property
    def is_local(self) -> bool:
        return _local(self.root) is not None or fsutil.is_local(self.fs)

    @property
    def _os_fs(self) -> pafs.FileSystem | None:
        """None for a plain local root (read with ``os`` calls: no pyarrow import on a
        cached run), else the pyarrow filesystem."""
        return None if _local(self.root) is not None else self.fs

    def entry(self, key: str) -> str:
        return f"{self.base}/artifacts/{key[:2]}/{key}"

    def write(self, key: str, values: Sequence[Any], **info: Any) -> Manifest:
        """Persist ``values`` (one per output) under ``key``; return the manifest."""
        pending = self.prepare(key, values, **info)
        pending.commit()
        return pending.manifest

    def prepare(self, key: str, values: Sequence[Any], **info: Any) -> PendingWrite:
        """Checksum ``values`` and build their manifest; ``.commit()`` writes them.

        One-file formats (numpy, JSON, pickle) are checksummed in memory, so their
        manifest -- and the content hashes consumers key on -- is known before a byte is
        written, and the commit (files, then the manifest) can run beside the consumers
        (``runtime.tasks``). Datasets, checkpoints and DataFrames are written here."""
        if not KEY.match(key):
            raise ValueError(f"not a cache key: {key!r}")
        entry, fs = self.entry(key), None  # the filesystem only for formats written here
        data_id = os.urandom(6).hex()  # 12 hex digits (``manifests._DATA``)
        outputs, files = [], []
        for i, value in enumerate(values):
            path = f"{entry}/{data_id}/out{i}"
            encoded = serializers.encode(value)
            if encoded is None:
                fs = fs or self.fs
                meta = serializers.write(value, fs, path)
                meta["files"] = fsutil.checksums(fs, path)
            else:
                meta, bufs = encoded
                meta["files"] = {rel: [sum(memoryview(b).nbytes for b in parts),
                                       fsutil.digest_buffers(parts)]
                                 for rel, parts in bufs.items()}
                files.append((path, bufs))
            meta["content"] = content_hash(meta, fsutil.CHECKSUM)
            outputs.append(meta)
        manifest = {"key": key, "data": data_id, "created": time.time(),
                    "checksum": fsutil.CHECKSUM, "outputs": outputs, **info}
        manifest["size"] = sum(f[0] for o in outputs for f in o["files"].values())
        return PendingWrite(self, manifest, files)

    def manifest(self, key: str) -> Manifest | None:
        """The committed manifest of ``key``, or None (missing, unreadable or invalid:
        an invalid one is reported with a warning)."""
        if not KEY.match(key):
            return None
        path = f"{self.entry(key)}/manifest.json"
        try:
            if _local(self.root) is not None:
                with open(path, "rb") as fh:
                    raw = fh.read()
            else:
                raw = fsutil.read_bytes(self.fs, path)
        except (FileNotFoundError, OSError):
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if (problem := manifest_problem(data, key)) is not None:
            warn_corrupt(key, f"manifest rejected: {problem}")
            return None
        return data

    def verify(self, manifest: Manifest, *, deep: bool = True) -> str | None:
        """None when the artifact is intact, else why not (sizes; checksums if ``deep``)."""
        fs = self._os_fs
        if (problem := manifest_problem(manifest, manifest.get("key"))) is not None:
            return f"manifest rejected: {problem}"
        for i in range(len(manifest["outputs"])):
            if problem := self.verify_output(manifest, i, deep=deep, fs=fs):
                return problem
        return None

    def verify_output(self, manifest: Manifest, i: int, *, deep: bool = True,
                      fs: pafs.FileSystem | None = None) -> str | None:
        """``verify`` of output ``i`` only (the manifest is assumed valid)."""
        fs = fs if fs is not None else self._os_fs
        out = manifest["outputs"][i]
        path = self.out_path(manifest, i)
        if fsutil.list_files(fs, path) != {k: v[0] for k, v in out["files"].items()}:
            return f"output {i}: files missing or resized"
        if self.is_local and (escaped := escapes(path, out["files"])):
            return f"output {i}: {escaped} resolves outside the store"
        if deep:
            for rel, (_size, sha) in out["files"].items():
                if fsutil.file_digest(fs, f"{path}/{rel}", checksum_of(manifest)) != sha:
                    return f"output {i}: checksum mismatch in {rel}"
        return None

    def load(self, manifest: Manifest, index: int = 0, *, verify: bool = True) -> Any:
        """Load output ``index``; raises ``CorruptArtifact`` if verification fails.

        The bytes parsed are always checked against the manifest in this process
        (``serializers.read``); ``verify=True`` also checksums every file first (a
        Dataset's Parquet files are read later, by Ray)."""
        if (problem := manifest_problem(manifest, manifest.get("key"))) is not None:
            raise CorruptArtifact(f"artifact manifest rejected: {problem}")
        out = manifest["outputs"][index]
        if verify and (problem := self._verify_for_load(manifest, index)):
            raise CorruptArtifact(f"artifact {manifest['key']}: {problem}")
        if (not verify and out["format"] == "dataset" and self.is_remote
                and (problem := self.verify_output(manifest, index))):
            # Ray reads a Dataset lazily, so serializers.read checks nothing of it: on a
            # remote store the loading process checks its files (other nodes, other files
            # than the driver's planner checked)
            raise CorruptArtifact(f"artifact {manifest['key']}: {problem}")
        path = self._inside(manifest, index)
        try:
            value = serializers.read(self.fs, path, out, checksum=checksum_of(manifest))
        except CorruptArtifact as exc:
            raise CorruptArtifact(f"artifact {manifest['key']} output {index}: {exc}") from None
        if out["format"] == "checkpoint":
            from airflowdsl.air.checkpoint import Checkpoint

            if isinstance(value, Checkpoint):  # sent to another process: loaded there again
                value.origin = StoredOutput(self, manifest, index)
        return value

    def _verify_for_load(self, manifest: Manifest, index: int) -> str | None:
        """``verify(manifest)``, except that output ``index`` of a one-file format is only
        checked for its files and sizes here: ``serializers.read`` checksums that very file
        as it loads it (a 100 MB array was read and checksummed twice)."""
        out = manifest["outputs"][index]
        if list(out["files"]) != [serializers.ONE_FILE.get(out["format"])]:
            return self.verify(manifest)
        fs = self._os_fs
        for i in range(len(manifest["outputs"])):
            if problem := self.verify_output(manifest, i, deep=i != index, fs=fs):
                return problem
        return None

    def fetch(self, manifest: Manifest, index: int, target: str) -> str:
        """Copy checkpoint output ``index`` into local folder ``target``, every file checked
        against the manifest; returns ``target``. What a checkpoint loaded from this store
        does in another process that uses it (``Checkpoint.origin``): it reads the store,
        not the folder of the process that loaded it first."""
        if (problem := manifest_problem(manifest, manifest.get("key"))) is not None:
            raise CorruptArtifact(f"artifact manifest rejected: {problem}")
        out = manifest["outputs"][index]
        if out["format"] != "checkpoint":
            raise ValueError(f"output {index} of {manifest['key']} is not a checkpoint")
        try:
            return serializers.fetch_files(self.fs, self._inside(manifest, index), out["files"],
                                           target, checksum=checksum_of(manifest))
        except CorruptArtifact as exc:
            raise CorruptArtifact(f"artifact {manifest['key']} output {index}: {exc}") from None

    def _inside(self, manifest: Manifest, index: int) -> str:
        """The folder of output ``index``; raises ``CorruptArtifact`` when a file of a local
        store resolves outside the store."""
        path = self.out_path(manifest, index)
        if self.is_local and (escaped := escapes(path, manifest["outputs"][index]["files"])):
            raise CorruptArtifact(f"artifact {manifest['key']}: {escaped} resolves outside the store")
        return path

    def out_path(self, manifest: Manifest, index: int) -> str:
        return f"{self.entry(manifest['key'])}/{manifest['data']}/out{index}"

    def artifact_paths(self, manifest: Manifest) -> list[str]:
        """Where each output lives (URIs for remote roots, paths for local ones)."""
        prefix = "" if self.is_local else self.root.split("://", 1)[0] + "://"
        return [prefix + self.out_path(manifest, i) for i in range(len(manifest["outputs"]))]

    def entries(self) -> Iterator[Manifest]:
        """Every committed manifest in the store."""
        import pyarrow.fs as pafs

        sel = pafs.FileSelector(f"{self.base}/artifacts", recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(sel):
            if info.base_name == "manifest.json":
                key = info.path.rsplit("/", 2)[-2]
                if (m := self.manifest(key)) is not None:
                    yield m

    def delete(self, key: str) -> None:
        try:
            self.fs.delete_dir(self.entry(key))
        except (FileNotFoundError, OSError):
            pass

    def clear(self, *, pipeline: str | None = None) -> int:
        """Delete the cache (or one pipeline's entries); return how many entries went."""
        if pipeline is None:
            n = sum(1 for _ in self.entries())
            self.delete_all()
            return n
        doomed = [m["key"] for m in self.entries() if m.get("pipeline") == pipeline]
        for key in doomed:
            self.delete(key)
        return len(doomed)

    def delete_all(self) -> None:
        try:
            self.fs.delete_dir(f"{self.base}/artifacts")
        except (FileNotFoundError, OSError):
            pass


@dataclass(frozen=True)
class StoredOutput:
    """A checkpoint output of a step, as where it is stored. On a remote store it is handed
    downstream so (its directory exists only on the producing node): the consumer -- on
    any node -- loads it from the store (``resolve``), checked file by file. Every
    checkpoint the store loads carries one as its ``origin``, so a process it is sent to
    (a BatchPredictor actor on another node) fetches it from the store too."""

    store: ArtifactStore
    manifest: Manifest
    index: int

    def load(self) -> Any:
        return self.store.load(self.manifest, self.index, verify=False)

    def fetch(self, target: str) -> str:
        """The checkpoint's files, checked, into local folder ``target`` (``air.checkpoint.Origin``)."""
        return self.store.fetch(self.manifest, self.index, target)


def hand_on(store: ArtifactStore | None, manifest: Manifest | None,
            outputs: Sequence[Any]) -> tuple[Any, ...]:
    """``outputs`` as a step's task returns them for its consumers: on a remote store a
    checkpoint becomes a ``StoredOutput`` (a local directory means nothing on another
    node); everything else as it is."""
    if store is None or manifest is None or not store.is_remote:
        return tuple(outputs)
    return tuple(StoredOutput(store, manifest, i) if serializers.is_checkpoint(v) else v
                 for i, v in enumerate(outputs))


def resolve(value: Any) -> Any:
    """What a consumer gets for an upstream value: a ``StoredOutput`` loaded, else itself."""
    return value.load() if isinstance(value, StoredOutput) else value


@dataclass
class PendingWrite:
    """A prepared write (``ArtifactStore.prepare``): the manifest, with every checksum and
    content hash, and what ``commit`` still writes."""

    store: ArtifactStore
    manifest: Manifest
    files: list[tuple[str, dict[str, list[Any]]]]  # (output folder, name -> buffers)

    @property
    def nbytes(self) -> int:
        """Bytes ``commit`` writes."""
        return sum(memoryview(b).nbytes for _, bufs in self.files for parts in bufs.values()
                   for b in parts)

    def commit(self) -> None:
        """Write the remaining files, then the manifest (atomically): until the manifest
        is there, nothing refers to the files; a crash leaves an orphaned folder."""
        fs = self.store.fs
        local = self.store.is_local
        for path, bufs in self.files:
            if local:
                fsutil.write_local_files(path, bufs)
            else:
                for rel, parts in bufs.items():  # object stores: no directories
                    fsutil.write_bytes(fs, f"{path}/{rel}", list(parts))
        self.files = []
        entry = self.store.entry(self.manifest["key"])
        fsutil.atomic_write(fs, f"{entry}/manifest.json", json.dumps(self.manifest).encode())


def warn_corrupt(key: str, problem: str) -> None:
    warnings.warn(f"airflowdsl: artifact {key[:12]} is corrupt ({problem}); recomputing",
                  stacklevel=3)
