"""``airflowdsl cache gc``: remove what no run can use, never what a run may still read.

Removed, once older than ``grace_s`` (default one hour):
- orphaned write folders: ``<entry>/<write-id>/`` not named by the entry's manifest
  (a killed writer's, or superseded by a newer write of the same key: removed only
  when the newer manifest is itself older than ``grace_s``, so a run that planned to
  read the old one before it was replaced keeps it for that long);
- expired entries: ``cache_ttl`` passed (``expires_after`` in the manifest), and entries
  of code that changed on disk (``expires_after=0``: never looked up);
- leftover temporary manifests, entries with nothing left, unused lock files;
- trainer folders of pipeline steps (``air.progress.trainer_dir``, under ``<root>/train``
  and the default ``RunConfig`` storage, marked as written for this store): once the
  key's result is stored (its checkpoint was copied into the store; kept while a stored
  output is a pickle, which may be a ``Result`` pointing into the folder), a run-private
  folder once the run is over, a key folder whose key never got stored after
  ``STALE_TRAINER_S`` (it is what a rerun of that key would resume from until then).
An entry whose lock is held (a step being computed) is skipped, and so are its trainer
folders.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from airflowdsl.air.progress import TRAINER_MARKER
from airflowdsl.runtime.cutoff import lock_path
from airflowdsl.runtime.lease import Lease
from airflowdsl.runtime.manifests import KEY
from airflowdsl.runtime.store import ArtifactStore

DEFAULT_GRACE_S = 3600.0
#: a key-scoped trainer folder whose key never got stored is kept this long (s)
STALE_TRAINER_S = 7 * 24 * 3600.0


@dataclass
class GcReport:
    orphans: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    skipped_busy: list[str] = field(default_factory=list)
    trainer: list[str] = field(default_factory=list)  # trainer folders removed
    freed_bytes: int = 0


def collect(store: ArtifactStore, *, grace_s: float = DEFAULT_GRACE_S, now: float | None = None,
            dry_run: bool = False) -> GcReport:
    """Collect garbage in ``store`` (see the module docstring); return what went."""
    now = time.time() if now is None else now
    fs, report = store.fs, GcReport()
    sel = pafs.FileSelector(f"{store.base}/artifacts", recursive=False, allow_not_found=True)
    for shard in fs.get_file_info(sel):
        if shard.type != pafs.FileType.Directory:
            continue
        for entry in fs.get_file_info(pafs.FileSelector(shard.path, allow_not_found=True)):
            if entry.type == pafs.FileType.Directory and KEY.match(entry.base_name):
                _entry(store, entry.base_name, now, grace_s, dry_run, report)
    if store.is_local:
        _trainer_dirs(store, now, grace_s, dry_run, report)
        _locks(store, dry_run, report)
    return report


def trainer_roots(store: ArtifactStore) -> list[str]:
    """Where pipeline steps' trainers keep checkpoints by default: ``<root>/train`` and
    ``RunConfig().resolved_storage_path()`` (an explicit ``storage_path`` is not searched)."""
    from airflowdsl.air.config import RunConfig

    return list(dict.fromkeys([os.path.join(store.base, "train"),
                               RunConfig().resolved_storage_path()]))


def _newest(folder: str) -> float:
    newest = os.stat(folder).st_mtime
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(base, name)).st_mtime)
            except OSError:
                continue
    return newest


def _size(folder: str) -> int:
    return sum(os.lstat(os.path.join(b, f)).st_size for b, _, fs in os.walk(folder) for f in fs)


def _trainer_dirs(store: ArtifactStore, now: float, grace_s: float, dry_run: bool,
                  report: GcReport) -> None:
    for root in trainer_roots(store):
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            named = os.path.join(root, name)
            if not os.path.isdir(named) or os.path.islink(named):
                continue
            for leaf in sorted(os.listdir(named)):
                folder = os.path.join(named, leaf)
                if leaf.startswith(("key-", "run-")) and not os.path.islink(folder):
                    _trainer_dir(store, folder, now, grace_s, dry_run, report)


def _trainer_dir(store: ArtifactStore, folder: str, now: float, grace_s: float,
                 dry_run: bool, report: GcReport) -> None:
    try:
        with open(os.path.join(folder, TRAINER_MARKER), encoding="utf-8") as f:
            marker = json.load(f)
        key = marker["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a step's trainer folder: not ours to remove
    if marker.get("store") != store.root or not isinstance(key, str) or not KEY.match(key):
        return
    age = now - _newest(folder)
    if age <= grace_s:
        return
    lease = Lease(lock_path(store, key), wait=False)
    if not lease.acquire():
        report.skipped_busy.append(os.path.basename(folder))
        return
    try:
        manifest = store.manifest(key)
        if manifest is not None:
            remove = not any(o.get("format") == "pickle" for o in manifest["outputs"])
        else:
            remove = os.path.basename(folder).startswith("run-") or age > STALE_TRAINER_S
        if not remove:
            return
        report.trainer.append(folder)
        report.freed_bytes += _size(folder)
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(folder))  # the trainer's name folder, if now empty
            except OSError:
                pass
    finally:
        lease.release()


def _age(info: pafs.FileInfo, now: float) -> float:
    return now - (info.mtime.timestamp() if info.mtime is not None else now)


def _entry(store: ArtifactStore, key: str, now: float, grace_s: float, dry_run: bool,
           report: GcReport) -> None:
    lease = Lease(lock_path(store, key), wait=False)
    if not lease.acquire():
        report.skipped_busy.append(key)
        return
    try:
        fs, path = store.fs, store.entry(key)
        manifest = store.manifest(key)
        children = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        if manifest is not None and manifest.get("expires_after") is not None:
            expires = float(manifest.get("created", 0)) + float(manifest["expires_after"])
            if expires + grace_s < now:
                report.expired.append(key)
                report.freed_bytes += int(manifest.get("size", 0))
                if not dry_run:
                    fs.delete_dir(path)
                return
        replaced_long_ago = manifest is None or now - float(manifest.get("created", 0)) > grace_s
        kept = 0
        for child in children:
            name = child.base_name
            if manifest is not None and name in (manifest["data"], "manifest.json"):
                kept += 1
                continue
            if _age(child, now) <= grace_s or (manifest is not None and not replaced_long_ago):
                kept += 1
                continue
            (report.orphans if child.type == pafs.FileType.Directory else report.other).append(
                f"{key}/{name}")
            if not dry_run:
                fs.delete_dir(child.path) if child.type == pafs.FileType.Directory \
                    else fs.delete_file(child.path)
        if not kept and not dry_run:
            fs.delete_dir(path)
    finally:
        lease.release()


def _locks(store: ArtifactStore, dry_run: bool, report: GcReport) -> None:
    root = f"{store.base}/locks"
    for shard, _, files in os.walk(root):
        for name in files:
            path = os.path.join(shard, name)
            lease = Lease(path, wait=False)
            if lease.acquire():  # unused: unlink while holding it (takers re-check the inode)
                try:
                    if not dry_run:
                        os.unlink(path)
                    report.other.append(os.path.relpath(path, store.base))
                finally:
                    lease.release()
