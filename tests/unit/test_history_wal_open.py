"""Opening the run history while another process creates it: SQLite answers "database is
locked" to the switch to WAL at once (its deadlock rule: no busy wait), so the switch is
retried for a bounded time, then fails naming the file (seen with 2-4 drivers starting on
one new store at once)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from airflowdsl.errors import StoreError
from airflowdsl.runtime import history


class _Conn:
    """Answers "database is locked" to the first ``locked`` statements."""

    def __init__(self, locked: int) -> None:
        self.locked, self.seen = locked, []

    def execute(self, sql: str) -> None:
        self.seen.append(sql)
        if len(self.seen) <= self.locked:
            raise sqlite3.OperationalError("database is locked")


def test_the_switch_to_wal_is_retried_while_locked() -> None:
    conn = _Conn(locked=3)
    history._wal(conn, Path("h.sqlite"))  # type: ignore[arg-type]
    assert conn.seen == ["PRAGMA journal_mode = WAL"] * 4


def test_a_lock_that_stays_fails_naming_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "WAL_WAIT_S", 0.1)
    with pytest.raises(StoreError, match=r"the run history .*h\.sqlite stayed locked"):
        history._wal(_Conn(locked=10**6), Path("h.sqlite"))  # type: ignore[arg-type]


def test_other_errors_are_not_retried() -> None:
    class Broken(_Conn):
        def execute(self, sql: str) -> None:
            self.seen.append(sql)
            raise sqlite3.OperationalError("disk I/O error")

    conn = Broken(locked=0)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        history._wal(conn, Path("h.sqlite"))  # type: ignore[arg-type]
    assert len(conn.seen) == 1


def test_a_new_history_is_in_wal_mode(tmp_path: Path) -> None:
    h = history.History(tmp_path / "h.sqlite")
    assert h._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
