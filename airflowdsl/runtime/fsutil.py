"""Small pyarrow.fs helpers: resolve roots, atomic writes, checksums, copies."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import xxhash  # with the store: a cached run checksums its output (~2 ms to import)

from airflowdsl.air.storage import S3_ENV as S3_ENV  # re-exported: the store's helpers
from airflowdsl.air.storage import Options as Options
from airflowdsl.air.storage import resolve as resolve
from airflowdsl.air.storage import store_options as store_options
from airflowdsl.fileio import atomic_write_bytes

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_CHUNK = 1 << 20

#: The checksum new manifests use for file integrity (``manifest["checksum"]``): xxHash's
#: XXH3-128, ~10x faster than SHA-256 here (100 MB: 5 ms vs 58 ms). It detects damage
#: (truncation, bit flips, a replaced file), not an adversary who can write the store:
#: the store is trusted storage, manifests are validated data. Manifests without the
#: field were written with SHA-256 and still verify with it.
CHECKSUM = "xxh3_128"
CHECKSUMS = ("sha256", "xxh3_128")


def hasher(algo: str = CHECKSUM) -> Any:
    """A new hash object of checksum ``algo`` (``update``/``hexdigest``)."""
    if algo == "xxh3_128":
        return xxhash.xxh3_128()
    if algo == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum {algo!r}")


def digest_buffers(buffers: Iterable[Any], algo: str = CHECKSUM) -> str:
    """The 32-hex-digit checksum of the concatenated ``buffers`` (bytes, memoryviews)."""
    h = hasher(algo)
    for b in buffers:
        h.update(b)
    return str(h.hexdigest()[:32])


def local_path(root: str) -> str | None:
    """The directory of a plain local root (no URI scheme), without importing pyarrow:
    the cached path reads local stores with ``os`` calls only."""
    return None if "://" in root else os.path.abspath(os.path.expanduser(root))


def is_local(fs: pafs.FileSystem) -> bool:
    import pyarrow.fs as pafs

    return isinstance(fs, pafs.LocalFileSystem)


def write_bytes(fs: pafs.FileSystem, path: str, data: Any) -> None:
    """Write ``data`` (bytes, or a list of buffers written in turn: nothing is joined) as
    one object/file ``path`` through a pyarrow output stream."""
    with fs.open_output_stream(path) as out:
        for b in data if isinstance(data, list) else [data]:
            out.write(b)


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    """The whole file/object ``path``. A random-access file knows its size and reads it in
    one request: ``open_input_stream().read()`` on S3 took 16 s for 64 MB (moto) against
    0.3 s this way."""
    with fs.open_input_file(path) as f:
        data = f.read()
    return data if isinstance(data, bytes) else bytes(data)


def atomic_write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``path`` so readers see all of it or nothing.

    Local: temp file + rename (safe against a killed process; no fsync, so not
    against power loss). Object stores: a single PUT is already atomic (the
    object appears only when the upload completes).
    """
    if not is_local(fs):
        write_bytes(fs, path, data)
        return
    atomic_write_bytes(path, data, make_parents=True)


def file_digest(fs: pafs.FileSystem | None, path: str, algo: str = "sha256") -> str:
    h = hasher(algo)
    chunk_size = _CHUNK if fs is None or is_local(fs) else 8 * _CHUNK  # fewer S3 reads
    with (open(path, "rb") if fs is None else fs.open_input_stream(path)) as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()[:32]


def list_files(fs: pafs.FileSystem | None, path: str) -> dict[str, int]:
    """Relative path -> size of every file under directory ``path`` (``fs`` None: a local
    directory, listed with ``os.scandir``)."""
    if fs is None:
        return _list_local(path, "")
    import pyarrow.fs as pafs

    sel = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    base = len(path.rstrip("/")) + 1
    return {
        i.path[base:]: i.size or 0 for i in fs.get_file_info(sel) if i.type == pafs.FileType.File
    }


def checksums(fs: pafs.FileSystem, path: str, algo: str = CHECKSUM) -> dict[str, list[int | str]]:
    """Relative path -> [size, checksum] of every file under ``path``."""
    return {rel: [size, file_digest(fs, f"{path}/{rel}", algo)]
            for rel, size in list_files(fs, path).items()}


def write_local_files(path: str, files: dict[str, list[Any]]) -> None:
    """Write ``rel -> buffers`` under local directory ``path`` (plain writes: the files of
    a write folder need no atomicity, the manifest written after them commits them)."""
    os.makedirs(path, exist_ok=True)
    for rel, buffers in files.items():
        with open(os.path.join(path, rel), "wb") as out:
            for b in buffers:
                out.write(b)


def _list_local(path: str, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return out
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            out.update(_list_local(e.path, f"{prefix}{e.name}/"))
        elif e.is_file():
            out[prefix + e.name] = e.stat().st_size
    return out


def copy_dir_from_local(local: str, fs: pafs.FileSystem, path: str) -> None:
    import pyarrow.fs as pafs

    if is_local(fs):  # object stores have no directories
        fs.create_dir(path, recursive=True)
    pafs.copy_files(local, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def copy_dir_to_local(fs: pafs.FileSystem, path: str) -> str:
    import pyarrow.fs as pafs

    local = tempfile.mkdtemp(prefix="airflowdsl-")
    pafs.copy_files(path, local, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return local
