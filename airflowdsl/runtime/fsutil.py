"""Small pyarrow.fs helpers: resolve roots, atomic writes, checksums, copies."""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache

import pyarrow.fs as pafs

from airflowdsl.fileio import atomic_write_bytes

_CHUNK = 1 << 20


@lru_cache(maxsize=32)
def resolve(root: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) for a local path or a URI (``file://``, ``s3://``, ...)."""
    if "://" not in root:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(root))
    try:
        fs, path = pafs.FileSystem.from_uri(root)
    except (pafs.ArrowInvalid, ValueError, TypeError):  # type: ignore[attr-defined]
        import fsspec

        ffs, path = fsspec.core.url_to_fs(root)
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
    return fs, path.rstrip("/")


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as out:
        out.write(data)


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return bytes(f.read())


def atomic_write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``path`` so readers see all of it or nothing.

    Local: temp file + rename (safe against a killed process; no fsync, so not
    against power loss). Object stores: a single PUT is already atomic (the
    object appears only when the upload completes).
    """
    if not is_local(fs):
        write_bytes(fs, path, data)
        return
    atomic_write_bytes(path, data)


def file_digest(fs: pafs.FileSystem, path: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()[:32]


def list_files(fs: pafs.FileSystem, path: str) -> dict[str, int]:
    """Relative path -> size of every file under directory ``path``."""
    sel = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    base = len(path.rstrip("/")) + 1
    return {
        i.path[base:]: i.size or 0 for i in fs.get_file_info(sel) if i.type == pafs.FileType.File
    }


def checksums(fs: pafs.FileSystem, path: str) -> dict[str, list[int | str]]:
    """Relative path -> [size, sha256] of every file under ``path``."""
    return {rel: [size, file_digest(fs, f"{path}/{rel}")] for rel, size in list_files(fs, path).items()}


def copy_dir_from_local(local: str, fs: pafs.FileSystem, path: str) -> None:
    fs.create_dir(path, recursive=True)
    pafs.copy_files(local, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def copy_dir_to_local(fs: pafs.FileSystem, path: str) -> str:
    local = tempfile.mkdtemp(prefix="airflowdsl-")
    pafs.copy_files(path, local, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return local
