"""Fingerprints of the outside data a step declares it reads (``watch=[...]``).

Local paths and globs: size + mtime (nanoseconds) of every matching file
(directories are walked) -- cheap, and any rewrite changes the mtime.
URIs (``s3://``, ``gs://``, ``http(s)://``...): fsspec ``info()``, using the
ETag / checksum when the backend gives one, else size + modification time.
A pattern matching nothing fingerprints as ``missing``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from typing import Any

_ID_FIELDS = ("ETag", "etag", "md5Hash", "md5", "crc32c", "checksum")
_TIME_FIELDS = ("mtime", "LastModified", "last_modified", "updated", "created")


def watch_fingerprint(patterns: Iterable[str]) -> dict[str, str]:
    """``path -> fingerprint`` for every file the patterns name."""
    out: dict[str, str] = {}
    for pattern in patterns:
        found = _remote(pattern) if "://" in pattern and not pattern.startswith("file://") else \
            _local(pattern.removeprefix("file://"))
        out.update(found or {pattern: "missing"})
    return out


def _local(pattern: str) -> dict[str, str]:
    path = os.path.expanduser(pattern)
    matches = glob.glob(path, recursive=True) if glob.has_magic(path) else [path]
    out: dict[str, str] = {}
    for m in matches:
        files = [os.path.join(d, f) for d, _, fs in os.walk(m) for f in fs] if os.path.isdir(m) else [m]
        for f in files:
            try:
                st = os.stat(f)
            except OSError:
                continue
            out[f] = f"{st.st_size}:{st.st_mtime_ns}"
    return out


def _remote(pattern: str) -> dict[str, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(pattern)
    paths = fs.glob(path) if glob.has_magic(path) else [path]
    out: dict[str, str] = {}
    for p in paths:
        try:
            info = fs.info(p)
        except (FileNotFoundError, OSError):
            continue
        out[p] = _describe(info)
    return out


def _describe(info: dict[str, Any]) -> str:
    for k in _ID_FIELDS:
        if info.get(k):
            return f"{k}:{info[k]}"
    stamp = next((str(info[k]) for k in _TIME_FIELDS if info.get(k)), "")
    return f"{info.get('size')}:{stamp}"
