"""Directories in storage URIs, complete or not there: upload, check, download, delete.

Object stores have no atomic directory rename, so a directory uploaded here is only
*complete* once its marker, ``COMPLETE_MARKER`` (JSON ``{"files": {relative path: size}}``),
is there: it is written last, after every file, and removed first when the directory
is replaced or deleted. A reader trusts a directory only when the marker is there and
every file it lists has that size (``complete_files``); a killed upload leaves files
without a marker, which no reader takes. Files named in ``unlisted`` (a checkpoint's
metadata and preprocessor, which the controller writes later) are uploaded and
downloaded but not listed, so writing them does not make the directory incomplete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflowdsl.air.storage import Options, resolve
from airflowdsl.errors import TrainingFailedError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

COMPLETE_MARKER = ".airflowdsl-complete.json"


def _local_files(local: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for base, _dirs, files in os.walk(local):
        for name in files:
            full = os.path.join(base, name)
            out[os.path.relpath(full, local).replace(os.sep, "/")] = os.path.getsize(full)
    return out


def _remote_files(uri: str, options: Options) -> dict[str, int]:
    import pyarrow.fs as pafs

    fs, path = resolve(uri, options)
    sel = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    cut = len(path) + 1
    return {i.path[cut:]: i.size or 0 for i in fs.get_file_info(sel)
            if i.type == pafs.FileType.File}


def read_bytes(uri: str, rel: str, options: Options) -> bytes | None:
    """The bytes of file ``rel`` under ``uri``, or None when there is none."""
    fs, path = resolve(uri, options)
    try:
        with fs.open_input_file(f"{path}/{rel}") as f:
            data = f.read()
    except (FileNotFoundError, OSError):
        return None
    return data if isinstance(data, bytes) else bytes(data)


def write_bytes(uri: str, rel: str, data: bytes, options: Options) -> None:
    """Write file ``rel`` under ``uri`` (one PUT on an object store)."""
    fs, path = resolve(uri, options)
    target = f"{path}/{rel}"
    _make_dir(fs, target.rsplit("/", 1)[0])
    with fs.open_output_stream(target) as out:
        out.write(data)


def _make_dir(fs: pafs.FileSystem, path: str) -> None:
    """Local filesystems need the directory; object stores have none (no marker object)."""
    import pyarrow.fs as pafs

    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(path, recursive=True)


def delete_file(uri: str, rel: str, options: Options) -> None:
    fs, path = resolve(uri, options)
    try:
        fs.delete_file(f"{path}/{rel}")
    except (FileNotFoundError, OSError):
        pass


def delete(uri: str, options: Options) -> None:
    """Remove the directory ``uri``: its marker first, so it is never seen half deleted."""
    delete_file(uri, COMPLETE_MARKER, options)
    fs, path = resolve(uri, options)
    try:
        fs.delete_dir(path)
    except (FileNotFoundError, OSError):
        pass


def upload(local: str, uri: str, options: Options, *, unlisted: Iterable[str] = ()) -> None:
    """Copy local directory ``local`` to ``uri`` (replacing what is there), then mark it
    complete. Raises ``TrainingFailedError`` when ``local`` holds no file to list."""
    import pyarrow.fs as pafs

    skip = {COMPLETE_MARKER, *unlisted}
    files = {rel: size for rel, size in _local_files(local).items() if rel not in skip}
    if not files:
        raise TrainingFailedError(f"the checkpoint directory {local} holds no data to upload "
                                  f"to {uri}")
    delete(uri, options)  # a previous attempt's files under the same name
    fs, path = resolve(uri, options)
    _make_dir(fs, path)
    pafs.copy_files(local, path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)
    write_bytes(uri, COMPLETE_MARKER, json.dumps({"files": files}).encode(), options)


def mark_complete(uri: str, options: Options, *, unlisted: Iterable[str] = ()) -> None:
    """Mark directory ``uri``, written completely by someone else (Ray Tune persists a
    trial's checkpoint before it reports it), as complete with the files it holds now.
    Nothing when it is marked already or holds no file to list."""
    if read_bytes(uri, COMPLETE_MARKER, options) is not None:
        return
    skip = {COMPLETE_MARKER, *unlisted}
    files = {rel: size for rel, size in _remote_files(uri, options).items() if rel not in skip}
    if files:
        write_bytes(uri, COMPLETE_MARKER, json.dumps({"files": files}).encode(), options)


def complete_files(uri: str, options: Options) -> dict[str, int] | None:
    """The files (relative path -> size) of directory ``uri`` when it is complete: its
    marker is there and every file it lists is, with that size. Else None."""
    raw = read_bytes(uri, COMPLETE_MARKER, options)
    if raw is None:
        return None
    try:
        listed = json.loads(raw)["files"]
        wanted = {str(k): int(v) for k, v in listed.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not wanted:
        return None
    found = _remote_files(uri, options)
    return wanted if all(found.get(rel) == size for rel, size in wanted.items()) else None


def download(uri: str, target: str, options: Options) -> str:
    """Copy the complete directory ``uri`` into local ``target``; returns ``target``.
    Raises ``TrainingFailedError`` when it is not complete, before or after the copy."""
    import pyarrow.fs as pafs

    wanted = complete_files(uri, options)
    if wanted is None:
        raise TrainingFailedError(f"the checkpoint {uri} is not complete (no "
                                  f"{COMPLETE_MARKER}, or files missing or resized): an "
                                  f"upload that did not finish is never loaded")
    fs, path = resolve(uri, options)
    os.makedirs(target, exist_ok=True)
    pafs.copy_files(path, target, source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem())
    got = _local_files(target)
    if any(got.get(rel) != size for rel, size in wanted.items()):
        raise TrainingFailedError(f"the checkpoint {uri} changed while it was downloaded")
    os.remove(os.path.join(target, COMPLETE_MARKER))
    return target


@dataclass(frozen=True)
class Directory:
    """A directory in a storage URI as an ``air.scratch.Origin``: what a URI checkpoint
    is fetched from into a folder that its checkpoint object owns."""

    uri: str
    options: Options = ()

    def fetch(self, target: str) -> str:
        return download(self.uri, target, self.options)


def children(uri: str, options: Options) -> list[str]:
    """The names of the directories directly under ``uri`` (none when it is absent)."""
    import pyarrow.fs as pafs

    fs, path = resolve(uri, options)
    sel = pafs.FileSelector(path, recursive=False, allow_not_found=True)
    return sorted(i.base_name for i in fs.get_file_info(sel)
                  if i.type == pafs.FileType.Directory)


__all__ = ["COMPLETE_MARKER", "Directory", "children", "complete_files", "delete", "delete_file",
           "download", "mark_complete", "read_bytes", "upload", "write_bytes"]
