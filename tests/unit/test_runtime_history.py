"""Run history in SQLite: runs, steps, metrics, key components; DB location."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from airflowdsl.runtime.history import History, history_path, new_run_id
from airflowdsl.runtime.run import StepRun


def test_records_and_reads_back(tmp_path: Path) -> None:
    h = History.for_root(str(tmp_path))
    rid = new_run_id()
    h.start_run(rid, "p", {"a": 1}, str(tmp_path), time.time())
    step = StepRun("fit", "train", "succeeded", started=1.0, ended=3.5, cache_key="k",
                   artifacts=["/x"], metrics={"acc": 0.9})
    comps = {"params": {"detail": {"a": "d"}, "notes": {"a": "1"}}}
    h.record_steps(rid, [(step, comps), (StepRun("ev", status="failed", error="E: x"), None)])
    h.finish_run(rid, "failed", time.time(), "step 'ev' failed")
    run = h.run(rid[:-2])  # unique prefix
    assert run and run["status"] == "failed" and run["params"] == '{"a": 1}'
    by = {s["name"]: s for s in run["steps"]}
    assert by["fit"]["duration_s"] == 2.5 and by["ev"]["error"] == "E: x"
    assert run["metrics"] == [{"step": "fit", "name": "acc", "value": 0.9}]
    assert h.last_components("p", "fit") == comps
    assert h.last_components("p", "ev") is None
    assert [r["id"] for r in h.runs("p")] == [rid] and h.runs("other") == []
    mode = sqlite3.connect(tmp_path / "history.sqlite").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


def test_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIRFLOWDSL_HISTORY", raising=False)
    assert history_path("/data/store") == Path("/data/store/history.sqlite")
    assert history_path("file:///data/store") == Path("/data/store/history.sqlite")
    remote = history_path("s3://bucket/store")
    assert remote.parent == Path.home() / ".airflowdsl" and remote.name.startswith("history-")
    assert history_path("s3://bucket/other") != remote
    monkeypatch.setenv("AIRFLOWDSL_HISTORY", str(tmp_path / "h.sqlite"))
    assert history_path("s3://bucket/store") == tmp_path / "h.sqlite"
