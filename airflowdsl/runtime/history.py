"""Run history in SQLite (WAL mode, busy timeout): runs, steps, metrics.

Location: ``$AIRFLOWDSL_HISTORY`` if set; else ``<root>/history.sqlite`` for a plain
local store root. A URI root (``s3://``, ``gs://``, a shared ``file://`` mount) keeps
its runs in the store as JSON objects instead (``runtime.runrecords``: readable from any
machine that sees the store; no SQLite WAL on a network filesystem):
``History.for_root`` / ``History.shared`` return whichever applies.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflowdsl.errors import StoreError
from airflowdsl.runtime.run import StepRun

if TYPE_CHECKING:  # URI roots only: a local store's run never imports it
    from airflowdsl.runtime.runrecords import RunRecords

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, params TEXT, status TEXT NOT NULL,
    started REAL, ended REAL, git_commit TEXT, store TEXT, error TEXT, traceback TEXT);
CREATE INDEX IF NOT EXISTS runs_pipeline ON runs (pipeline, started);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, name TEXT NOT NULL, kind TEXT, status TEXT NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0, started REAL, ended REAL, duration_s REAL,
    cache_key TEXT, components TEXT, artifacts TEXT, error TEXT, traceback TEXT,
    reason TEXT, PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (run_id, step);
CREATE TABLE IF NOT EXISTS step_records (
    run_id TEXT NOT NULL, step TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (run_id, step, kind, seq));
"""

#: columns added after a database may have been created: (table, column, type); a
#: database without one gets it with ALTER TABLE when it is opened for writing
_MIGRATIONS = (("steps", "reason", "TEXT"),)
_STEP_COLUMNS = ("run_id", "name", "kind", "status", "cached", "started", "ended",
                 "duration_s", "cache_key", "components", "artifacts", "error", "traceback",
                 "reason")


def history_path(root: str) -> Path:
    """Where the history database of store ``root`` lives (see module doc)."""
    if env := os.environ.get("AIRFLOWDSL_HISTORY"):
        return Path(env).expanduser()
    if "://" not in root or root.startswith("file://"):
        return Path(root.removeprefix("file://")) / "history.sqlite"
    tag = hashlib.sha256(root.encode()).hexdigest()[:12]
    return Path.home() / ".airflowdsl" / f"history-{tag}.sqlite"


def in_store(root: str) -> bool:
    """Whether ``root``'s runs are recorded in the store itself (a URI root, or a path
    declared shared with ``AIRFLOWDSL_STORE_SHARED=1``; no ``$AIRFLOWDSL_HISTORY``) rather
    than in SQLite, whose WAL does not work on a network filesystem."""
    return (("://" in root or os.environ.get("AIRFLOWDSL_STORE_SHARED") == "1")
            and not os.environ.get("AIRFLOWDSL_HISTORY"))


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def git_commit(start: Path | None = None) -> str | None:
    """HEAD commit of the git checkout containing ``start`` (no subprocess)."""
    d = (start or Path.cwd()).resolve()
    for parent in (d, *d.parents):
        head = parent / ".git" / "HEAD"
        if head.is_file():
            ref = head.read_text().strip()
            if not ref.startswith("ref: "):
                return ref or None
            name = ref[5:]
            loose = parent / ".git" / name
            if loose.is_file():
                return loose.read_text().strip()
            packed = parent / ".git" / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + name):
                        return line.split(" ", 1)[0]
            return None
    return None


def _migrate(c: sqlite3.Connection) -> None:
    """Add the columns of ``_MIGRATIONS`` a database created by an older version lacks."""
    for table, column, kind in _MIGRATIONS:
        have = {row[1] for row in c.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


_INSERT_STEP = (f"INSERT OR REPLACE INTO steps ({', '.join(_STEP_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _STEP_COLUMNS)})")

_SHARED: dict[tuple[str, int], History] = {}


#: how long opening the history waits for another process to finish switching it to WAL
WAL_WAIT_S = 60.0


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite's "database is locked" / "busy": another connection holds the lock."""
    return "locked" in str(exc) or "busy" in str(exc)


def _wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch to write-ahead logging (a setting kept in the file: a no-op once set).
    SQLite answers "database is locked" at once, without its busy timeout, when several
    processes open a new database together and one is switching it; retried for up to
    ``WAL_WAIT_S`` seconds, then a StoreError naming the file."""
    deadline = time.monotonic() + WAL_WAIT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            if time.monotonic() > deadline:
                raise StoreError(
                    f"the run history {path} stayed locked for {WAL_WAIT_S:.0f} s while "
                    f"opening it ({exc}); another process holds it: wait for it to finish, "
                    f"or give this run another store") from exc
        time.sleep(0.02)


class History:
    """Thin, process-safe access to one history database."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        """Open (and create) the database at ``path``; ``readonly``: open an existing one
        for reading only (nothing is created; ``FileNotFoundError`` when there is none)."""
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"no run history at {self.path}")
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                         timeout=60, isolation_level=None,
                                         check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 60000")
            self._inode = os.stat(self.path).st_ino
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout = 60000")
        _wal(self._conn, self.path)
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._tx() as c:
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                c.execute(stmt)
            _migrate(c)
        self._inode = os.stat(self.path).st_ino

    @classmethod
    def for_root(cls, root: str, options: Any = ()) -> History | RunRecords:
        """The history of store ``root``: SQLite for a plain local root (or
        ``$AIRFLOWDSL_HISTORY``), else the run records in the store (``options``: the
        store's, ``ArtifactStore.options``)."""
        if in_store(root):
            from airflowdsl.runtime import fsutil
            from airflowdsl.runtime.runrecords import RunRecords

            fs, base = fsutil.resolve(root, options or fsutil.store_options(root))
            return RunRecords(fs, base, git_commit=git_commit)
        return cls(history_path(root))

    @classmethod
    def shared(cls, root: str, options: Any = ()) -> History | RunRecords:
        """This process's open connection to ``root``'s history (closing one per run cost
        ~3 ms, measured in a 50-step chain, plus the open); reopened when the file was
        deleted or replaced, or in a forked child. Do not close it. (Run records in the
        store for a URI root: ``for_root``.)"""
        if in_store(root):
            return cls.for_root(root, options)
        path = history_path(root)
        key = (str(path), os.getpid())
        h = _SHARED.get(key)
        try:
            if h is not None and os.stat(path).st_ino == h._inode:
                return h
        except OSError:
            pass
        h = _SHARED[key] = cls(path)
        return h

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:  # waits up to the busy timeout (60 s) for another writer
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            raise StoreError(
                f"the run history {self.path} stayed locked by another process for 60 s "
                f"({exc}): a run or command writing it may be stopped (Ctrl-Z) or stuck; "
                "let it finish, or give this run another store") from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def start_run(self, run_id: str, pipeline: str, params: dict[str, Any], store: str,
                  started: float) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO runs (id, pipeline, params, status, started, git_commit, store)"
                      " VALUES (?, ?, ?, 'running', ?, ?, ?)",
                      (run_id, pipeline, json.dumps(params, default=repr), started,
                       git_commit(), store))

    def record_steps(self, run_id: str, steps: list[tuple[StepRun, dict[str, Any] | None]]) -> None:
        """Insert or replace step rows (with their key components) and their metrics."""
        last = {s.name: (s, components) for s, components in steps}  # a repeat: last wins
        names = [(run_id, name) for name in last]
        with self._tx() as c:  # five statements per call, not five per step
            c.executemany(_INSERT_STEP, [(
                run_id, s.name, s.kind, s.status, int(s.cached), s.started, s.ended,
                s.duration_s, s.cache_key, json.dumps(components) if components else None,
                json.dumps(s.artifacts), s.error, s.traceback, s.reason or None)
                for s, components in last.values()])
            c.executemany("DELETE FROM metrics WHERE run_id = ? AND step = ?", names)
            c.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", [
                (run_id, s.name, k, float(v)) for s, _ in last.values()
                for k, v in s.metrics.items()])
            c.executemany("DELETE FROM step_records WHERE run_id = ? AND step = ?", names)
            c.executemany("INSERT INTO step_records VALUES (?, ?, ?, ?, ?)", [
                (run_id, s.name, kind, i, json.dumps(row, default=str)) for s, _ in last.values()
                for kind, rows in s.records.items() for i, row in enumerate(rows)])

    def finish_run(self, run_id: str, status: str, ended: float, error: str | None = None,
                   traceback: str | None = None) -> None:
        with self._tx() as c:
            c.execute("UPDATE runs SET status = ?, ended = ?, error = ?, traceback = ? WHERE id = ?",
                      (status, ended, error, traceback, run_id))

    def records(self, run_id: str, step: str | None = None,
                kind: str | None = None) -> list[dict[str, Any]]:
        """Rows steps of ``run_id`` recorded (``air.progress.record``), in order, each as
        ``{"step", "kind", "seq", "data"}``; filtered by ``step`` and ``kind`` if given."""
        q = "SELECT step, kind, seq, data FROM step_records WHERE run_id = ?"
        args: list[Any] = [run_id]
        for col, value in (("step", step), ("kind", kind)):
            if value is not None:
                q += f" AND {col} = ?"
                args.append(value)
        rows = self._conn.execute(q + " ORDER BY step, kind, seq", args).fetchall()
        return [{"step": r[0], "kind": r[1], "seq": r[2], "data": json.loads(r[3])} for r in rows]

    def runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        q = "SELECT * FROM runs" + (" WHERE pipeline = ?" if pipeline else "")
        rows = self._conn.execute(q + " ORDER BY started DESC LIMIT ?",
                                  ((pipeline,) if pipeline else ()) + (limit,))
        return [dict(r) for r in rows]

    def runs_page(self, pipeline: str | None = None, status: str | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Runs newest first, filtered, one page: (rows, how many match). Each row also has
        ``n_steps``, ``n_executed`` (ran: not cached, not skipped) and ``n_cached``."""
        where, args = [], []
        for col, value in (("pipeline", pipeline), ("status", status)):
            if value:
                where.append(f"r.{col} = ?")
                args.append(value)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        total = self._conn.execute("SELECT count(*) FROM runs r" + cond, args).fetchone()[0]
        rows = self._conn.execute(
            "SELECT r.*, count(s.name) AS n_steps,"
            " coalesce(sum(s.cached = 0 AND s.status != 'skipped'), 0) AS n_executed,"
            " coalesce(sum(s.cached), 0) AS n_cached"
            " FROM (SELECT * FROM runs r" + cond + " ORDER BY started DESC LIMIT ? OFFSET ?) r"
            " LEFT JOIN steps s ON s.run_id = r.id GROUP BY r.id ORDER BY r.started DESC",
            [*args, limit, offset])
        return [dict(r) for r in rows], int(total)

    def pipelines(self) -> list[str]:
        """Names of the pipelines with recorded runs."""
        return [r[0] for r in self._conn.execute("SELECT DISTINCT pipeline FROM runs ORDER BY 1")]

    def step_times(self, pipeline: str, *, runs: int = 5) -> dict[str, float]:
        """How long each step of ``pipeline`` took the last time it ran (not from the
        cache) in the latest ``runs`` runs: what ``runtime.fusion`` decides by."""
        rows = self._conn.execute(
            "SELECT s.name, s.duration_s FROM steps s JOIN (SELECT id, started FROM runs"
            " WHERE pipeline = ? ORDER BY started DESC LIMIT ?) r ON r.id = s.run_id"
            " WHERE s.status = 'succeeded' AND s.cached = 0 AND s.duration_s IS NOT NULL"
            " ORDER BY r.started", (pipeline, runs))
        return {name: float(d) for name, d in rows}  # the latest run's time wins

    def previous_components(self, pipeline: str, step: str, before: float
                            ) -> dict[str, Any] | None:
        """Key components of ``step`` in the latest run of ``pipeline`` started before
        ``before`` in which it succeeded (what a run's cache miss is explained against)."""
        row = self._conn.execute(
            "SELECT s.components FROM steps s JOIN runs r ON r.id = s.run_id"
            " WHERE r.pipeline = ? AND s.name = ? AND s.status = 'succeeded'"
            " AND s.components IS NOT NULL AND r.started < ? ORDER BY r.started DESC LIMIT 1",
            (pipeline, step, before)).fetchone()
        return json.loads(row[0]) if row else None

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run (id or unique id prefix) with its steps and metrics."""
        rows = self._conn.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY started DESC",
                                  (run_id.replace("%", "") + "%",)).fetchall()
        if len(rows) != 1 and not any(r["id"] == run_id for r in rows):
            return None
        row = next((r for r in rows if r["id"] == run_id), rows[0])
        out = dict(row)
        out["steps"] = [dict(r) for r in self._conn.execute(
            "SELECT * FROM steps WHERE run_id = ? ORDER BY started IS NULL, started", (row["id"],))]
        out["metrics"] = [dict(r) for r in self._conn.execute(
            "SELECT step, name, value FROM metrics WHERE run_id = ?", (row["id"],))]
        return out

    def last_reasons(self, pipeline: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
        """The latest run of ``pipeline`` that recorded steps: ``(run id, {step: row})``,
        each row with ``status``, ``cached`` and ``reason`` (why the step ran or was
        served, e.g. "upstream X re-ran but produced identical output"), or None."""
        row = self._conn.execute(
            "SELECT r.id FROM runs r WHERE r.pipeline = ? AND EXISTS"
            " (SELECT 1 FROM steps s WHERE s.run_id = r.id) ORDER BY r.started DESC LIMIT 1",
            (pipeline,)).fetchone()
        if row is None:
            return None
        steps = {r["name"]: dict(r) for r in self._conn.execute(
            "SELECT * FROM steps WHERE run_id = ?", (row[0],))}
        out = {name: {"status": r["status"], "cached": bool(r["cached"]),
                      "reason": r.get("reason") or ""} for name, r in steps.items()}
        return row[0], out

    def last_components(self, pipeline: str, step: str) -> dict[str, Any] | None:
        """Key components of ``step`` in the latest successful run of ``pipeline``."""
        row = self._conn.execute(
            "SELECT s.components FROM steps s JOIN runs r ON r.id = s.run_id"
            " WHERE r.pipeline = ? AND s.name = ? AND s.status = 'succeeded'"
            " AND s.components IS NOT NULL ORDER BY s.ended DESC LIMIT 1",
            (pipeline, step)).fetchone()
        return json.loads(row[0]) if row else None
