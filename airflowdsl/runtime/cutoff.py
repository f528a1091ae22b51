"""The cache, inside a step's task: resolve the key, take the key's lease, serve a stored
result when there is one.

The driver plans with the content hashes of cached upstream outputs. For a step whose
upstream re-runs, those hashes are known only when the upstream finishes, after the
step was submitted: its key has ``pending`` inputs, and the upstream's summary (with
its manifest) is passed to the task after the input values (``CacheCtl.upstreams``).
The task resolves the key and, if that key is stored, returns the stored outputs
instead of calling the step: *early cutoff* ("upstream X re-ran but produced
identical output"). Every looked-up step takes the key's lease first (``lease``), so
concurrent runs of one pipeline compute each key once: the others wait, then reuse.
"""

from __future__ import annotations

import os
import stat
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from airflowdsl.air import progress
from airflowdsl.errors import CorruptArtifact
from airflowdsl.runtime import fsutil, summaries
from airflowdsl.runtime.cache import CacheKey
from airflowdsl.runtime.lease import Lease
from airflowdsl.runtime.manifests import Manifest, whole_content
from airflowdsl.runtime.store import ArtifactStore

_PID = [os.getpid()]  # a system call per use otherwise (twice per step task)
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def pid() -> int:
    """This process's id (cached; renewed in a forked child)."""
    return _PID[0]


@dataclass(frozen=True)
class CacheCtl:
    """Planner -> task: the (maybe pending) key and what the task may do with it."""

    key: CacheKey
    upstreams: tuple[str, ...]  # steps whose summaries follow the input values, in order
    lookup: bool  # serve a stored result (False: forced, cache=False, stale code, ...)
    expires_after: float | None = None  # cache_ttl (s), recorded in the manifest for gc


def lock_path(store: Any, key: str) -> str | None:
    """The key's lock file under a local store root (None for object stores)."""
    return f"{store.base}/locks/{key[:2]}/{key}.lock" if store.is_local else None


@dataclass
class Claim:
    """``with claim(payload, values) as c:`` -- ``c.digest`` is the key to write under;
    ``c.hit`` is ``(outputs, manifest)`` when that key is stored (then do not compute:
    return ``c.served()``)."""

    ctl: CacheCtl | None
    summaries: tuple[Any, ...]
    store: Any  # ArtifactStore | None
    planned: str  # the planner's digest (used as is without a CacheCtl)
    key: CacheKey | None = field(init=False, default=None)
    #: the content hashes the pending inputs resolved to (``param -> hash``): the task's
    #: summary carries these, not the whole key; the driver resolves its own copy of the
    #: planned key with them (``CacheKey.resolve``), so both name the same digest
    contents: dict[str, str] | None = field(init=False, default=None)
    hit: tuple[tuple[Any, ...], Manifest] | None = None
    reason: str = ""
    repair: bool = False  # the stored entry of this key failed verification: rewrite it
    _lease: Lease | None = None

    def __post_init__(self) -> None:
        if self.ctl is None:
            return
        by_step = {up: summaries.contents(s)  # the summary's first line, not the whole
                   for up, s in zip(self.ctl.upstreams, self.summaries, strict=False)}
        contents: dict[str, str] = {}
        for param, ref in self.ctl.key.pending.items():
            up, _, idx = ref.partition("#")
            found = by_step.get(up)
            if found:
                contents[param] = found[int(idx)] if idx else whole_content(found)
        self.key = self.ctl.key.resolve(contents)
        self.contents = contents
        self._cutoff = sorted({r.partition("#")[0] for r in self.ctl.key.pending.values()})

    @property
    def digest(self) -> str:
        return self.key.digest if self.key is not None else self.planned

    def served(self) -> tuple[Any, ...]:
        """The task's return value for a hit: ``(*outputs, summary)``."""
        assert self.hit is not None
        outputs, manifest = self.hit
        now = time.time()
        return (*outputs, summaries.pack({
            "started": now, "ended": now, "manifest": manifest,
            "metrics": dict(manifest.get("metrics") or {}), "pid": pid(),
            "served": self.reason, "inputs": self.contents}))

    def __enter__(self) -> Claim:
        self._scope()
        if (self.store is None or self.ctl is None or self.key is None or not self.ctl.lookup
                or self.key.pending):
            return self
        digest = self.key.digest
        self._lease = Lease(lock_path(self.store, digest), on_wait=_waiting(digest))
        self._lease.acquire()
        manifest = self.store.manifest(digest)
        if manifest is not None:
            try:
                outputs = tuple(self.store.load(manifest, i, verify=True)
                                for i in range(len(manifest["outputs"])))
            except (CorruptArtifact, OSError) as exc:
                warnings.warn(f"airflowdsl: artifact {digest[:12]} is corrupt ({exc}); "
                              "recomputing", stacklevel=2)
                self.repair = True  # rewrite it, even with identical content (``same_stored``)
                return self
            self.hit = (outputs, manifest)
            self.reason = self._why()
        return self

    def _scope(self) -> None:
        """Tell the step context its key and whether it may reuse stored work under it
        (not when forced, ``cache=False``, persistence off, inputs still unknown): trainer
        storage is scoped by them (``air.progress.trainer_dir``)."""
        reusable = (self.store is not None and self.ctl is not None and self.ctl.lookup
                    and self.key is not None and not self.key.pending)
        progress.scope(self.digest, reuse=reusable,
                       store=self.store.root if self.store is not None else None,
                       store_options=self.store.options if self.store is not None else ())

    def _why(self) -> str:
        if self._cutoff:
            return f"upstream {', '.join(self._cutoff)} re-ran but produced identical output"
        waited = self._lease.waited_s if self._lease else 0.0
        return ("computed meanwhile by another run" + (f" (waited {waited:.1f}s)"
                                                        if waited >= 0.05 else ""))

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._lease is not None:
            self._lease.release()

    def hand_over(self) -> Lease | None:
        """The held lease, no longer released on exit: its new holder (the thread that
        commits the key's write beside the consumers, ``tasks``) releases it."""
        lease, self._lease = self._lease, None
        return lease

    def manifest_info(self) -> dict[str, Any]:
        """Extra manifest fields: when the entry expires (gc), the process that wrote it."""
        out: dict[str, Any] = {"writer_pid": pid()}
        if self.ctl is not None and self.ctl.expires_after is not None:
            out["expires_after"] = self.ctl.expires_after
        return out


def same_stored(store: Any, manifest: Manifest) -> Manifest | None:
    """The committed manifest of ``manifest``'s key when it already stores the same bytes
    (content-addressed dedupe: a re-run step -- forced, ``cache=False``, a fan-out writing
    one key many times -- need not write them again): a plain local root; the committed
    manifest valid, with the same checksum algorithm, the same outputs (format, type, and
    every file's name, size and checksum), the same pipeline and no expiry on either side
    (``created`` then matters); its files there with those sizes. The bytes on disk are not
    re-read here: every load checks what it parses against the manifest
    (``serializers.read``), and a step recomputed because its entry failed that check
    rewrites it (``Claim.repair``)."""
    if manifest.get("expires_after") is not None or fsutil.local_path(store.root) is None:
        return None
    committed = _committed_manifest(store, manifest["key"])
    if (committed is None or committed.get("checksum") != manifest.get("checksum")
            or committed.get("pipeline") != manifest.get("pipeline")
            or committed.get("expires_after") is not None
            or [(o["format"], o["type"], o["files"]) for o in committed["outputs"]]
            != [(o["format"], o["type"], o["files"]) for o in manifest["outputs"]]):
        return None
    if not all(_present(store, committed, i) for i in range(len(committed["outputs"]))):
        return None  # files missing, resized or escaping the store
    return committed


def _present(store: Any, manifest: Manifest, i: int) -> bool:
    """Output ``i``'s files are there with their sizes, inside the store: for a one-file
    output (``files`` names one file directly in its folder) one ``lstat`` -- a regular
    file, not a link, of that size -- else ``verify_output``'s listing and link checks."""
    files = manifest["outputs"][i]["files"]
    if len(files) == 1:
        ((rel, (size, _sum)),) = files.items()
        if "/" not in rel:
            try:
                st = os.lstat(f"{store.out_path(manifest, i)}/{rel}")
            except OSError:
                return False
            return stat.S_ISREG(st.st_mode) and st.st_size == size
    return store.verify_output(manifest, i, deep=False) is None


#: committed manifests this process read, by path: (inode, size, mtime) of the file
#: when read, and the parsed and checked manifest (not to be modified)
_READ: dict[str, tuple[tuple[int, int, int], Manifest]] = {}


def _committed_manifest(store: Any, key: str) -> Manifest | None:
    """``store.manifest(key)`` of a local root, parsed and checked again only when the file
    changed: a commit replaces it (rename: a new inode), so a forced rerun or a fan-out
    writing one key many times does not parse the same manifest per task."""
    path = f"{store.entry(key)}/manifest.json"
    try:
        st = os.stat(path)
    except OSError:
        return None
    seen = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _READ.get(path)
    if hit is not None and hit[0] == seen:
        return hit[1]
    committed: Manifest | None = store.manifest(key)
    if committed is not None:
        if len(_READ) >= 1024:
            _READ.clear()
        _READ[path] = (seen, committed)  # read after the stat: a change meanwhile re-reads
    return committed


def claim(p: Any, values: tuple[Any, ...]) -> Claim:
    """The :class:`Claim` of a task's payload ``p`` (``tasks.Payload``): the upstream
    summaries follow the ``p.args`` input values in ``values``."""
    n_in = sum(1 if how == "ref" else extra if how == "refs" else 0 for _, how, extra in p.args)
    ctl: CacheCtl | None = getattr(p, "cache", None)
    ups = values[n_in:n_in + len(ctl.upstreams)] if ctl is not None else ()
    return Claim(ctl, tuple(ups), ArtifactStore.of(p.store) if p.store else None, p.key)


def _waiting(digest: str) -> Callable[[float, dict[str, object] | None], None]:
    """What a step says while it waits for another process computing its result (the
    key's lease): in its live progress and its log, naming the holder."""

    def note(waited: float, holder: dict[str, object] | None) -> None:
        who = (f"pid {holder.get('pid')} on {holder.get('host')}" if holder else
               "another process")
        text = (f"waiting {waited:.0f} s for {who}, which computes this step's result "
                f"(key {digest[:12]}); it is reused when stored")
        progress.publish(text)
        print(f"airflowdsl: {text}", file=sys.stderr, flush=True)

    return note
