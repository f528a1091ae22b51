"""Small pyarrow.fs helpers: resolve roots, atomic writes, checksums, copies."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

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
        import xxhash

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


#: The driver's environment variables that configure an ``s3://`` store, and the
#: ``pyarrow.fs.S3FileSystem`` option each sets (first one set wins). They travel with the
#: store (``ArtifactStore.options``) into every task, Ray Data write task included, so
#: workers started before they were set, or on other nodes, reach the same endpoint.
S3_ENV = (("AWS_ENDPOINT_URL_S3", "endpoint_override"), ("AWS_ENDPOINT_URL", "endpoint_override"),
          ("AWS_REGION", "region"), ("AWS_DEFAULT_REGION", "region"),
          ("AWS_ACCESS_KEY_ID", "access_key"), ("AWS_SECRET_ACCESS_KEY", "secret_key"),
          ("AWS_SESSION_TOKEN", "session_token"))
_SECRETS = ("access_key", "secret_key", "session_token")

Options = tuple[tuple[str, str], ...]


def store_options(root: str) -> Options:
    """What a task needs to open ``root`` as this process does: for ``s3://`` the endpoint,
    region and static credentials of ``S3_ENV`` found in this process's environment
    (credentials only as a complete key pair, and not with
    ``AIRFLOWDSL_STORE_SEND_CREDENTIALS=0``: nodes then use their own credential chain).
    Other schemes: nothing (each node's own configuration). No pyarrow import."""
    if not root.startswith("s3://"):
        return ()
    opts: dict[str, str] = {}
    for var, name in S3_ENV:
        if name not in opts and os.environ.get(var):
            opts[name] = os.environ[var]
    if (os.environ.get("AIRFLOWDSL_STORE_SEND_CREDENTIALS", "1") == "0"
            or not ("access_key" in opts and "secret_key" in opts)):
        for name in _SECRETS:
            opts.pop(name, None)
    if "region" not in opts and "endpoint_override" not in opts:
        opts["region"] = _bucket_region(root[5:].split("/", 1)[0])
    return tuple(sorted(opts.items()))


@lru_cache(maxsize=32)
def _bucket_region(bucket: str) -> str:
    import pyarrow.fs as pafs

    try:
        return str(pafs.resolve_s3_region(bucket))
    except OSError:
        return "us-east-1"


@lru_cache(maxsize=32)
def resolve(root: str, options: Options = ()) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) for a local path or a URI (``file://``, ``s3://``, ``gs://``,
    any fsspec protocol). ``s3://`` uses ``pyarrow.fs.S3FileSystem`` with ``options``
    (``store_options``) over the standard credential chain."""
    import pyarrow.fs as pafs

    if "://" not in root:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(root))
    if root.startswith("s3://"):
        kw: dict[str, Any] = dict(options)
        endpoint = kw.get("endpoint_override", "")
        if "://" in endpoint:
            kw["scheme"], kw["endpoint_override"] = endpoint.split("://", 1)
        return pafs.S3FileSystem(**kw), root[5:].rstrip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(root)
    except (pafs.ArrowInvalid, ValueError, TypeError):  # type: ignore[attr-defined]
        import fsspec

        ffs, path = fsspec.core.url_to_fs(root)
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
    return fs, path.rstrip("/")


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
