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


def test_recording_a_step_again_replaces_its_metrics_and_records(tmp_path: Path) -> None:
    """The executor records a step as it changes (running, then succeeded): the last
    record of a step wins, also when one call names it twice."""
    h = History.for_root(str(tmp_path))
    rid = new_run_id()
    h.start_run(rid, "p", {}, str(tmp_path), time.time())
    h.record_steps(rid, [(StepRun("a", status="running", metrics={"old": 1.0}), None)])
    h.record_steps(rid, [(StepRun("a", status="running", metrics={"x": 1.0},
                                  records={"r": [{"i": 1}]}), None),
                         (StepRun("a", status="succeeded", metrics={"acc": 0.5},
                                  records={"r": [{"i": 2}]}), None),
                         (StepRun("b", status="succeeded", metrics={"acc": 0.7}), None)])
    run = h.run(rid)
    assert run and {s["name"]: s["status"] for s in run["steps"]} == {"a": "succeeded",
                                                                       "b": "succeeded"}
    assert sorted((m["step"], m["name"], m["value"]) for m in run["metrics"]) == [
        ("a", "acc", 0.5), ("b", "acc", 0.7)]
    assert [r["data"] for r in h.records(rid, "a")] == [{"i": 2}]


def test_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIRFLOWDSL_HISTORY", raising=False)
    assert history_path("/data/store") == Path("/data/store/history.sqlite")
    assert history_path("file:///data/store") == Path("/data/store/history.sqlite")
    remote = history_path("s3://bucket/store")
    assert remote.parent == Path.home() / ".airflowdsl" and remote.name.startswith("history-")
    assert history_path("s3://bucket/other") != remote
    monkeypatch.setenv("AIRFLOWDSL_HISTORY", str(tmp_path / "h.sqlite"))
    assert history_path("s3://bucket/store") == tmp_path / "h.sqlite"


OLD_STEPS = """CREATE TABLE steps (
    run_id TEXT NOT NULL, name TEXT NOT NULL, kind TEXT, status TEXT NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0, started REAL, ended REAL, duration_s REAL,
    cache_key TEXT, components TEXT, artifacts TEXT, error TEXT, traceback TEXT,
    PRIMARY KEY (run_id, name))"""


def test_step_reasons_are_kept_and_old_databases_migrate(tmp_path: Path) -> None:
    """Each step's reason (why it ran or was served) is stored; a database written before
    the column existed gets it when opened (its old rows read as no reason)."""
    from airflowdsl.runtime.explain import recorded_reason

    path = tmp_path / "history.sqlite"
    old = sqlite3.connect(path)
    old.execute(OLD_STEPS)
    old.execute("INSERT INTO steps (run_id, name, status) VALUES ('r0', 'src', 'succeeded')")
    old.commit()
    old.close()
    h = History(path)
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(steps)")]
    assert cols[-1] == "reason"
    assert History(path).path == path  # opening again: no second ALTER
    rid = new_run_id()
    h.start_run(rid, "p", {}, str(tmp_path), time.time())
    why = "upstream src re-ran but produced identical output"
    h.record_steps(rid, [(StepRun("src", status="succeeded", reason="cache disabled for this step",
                                  started=1.0, ended=2.0), None),
                         (StepRun("fit", status="succeeded", cached=True, reason=why), None)])
    steps = {s["name"]: s for s in h.run(rid)["steps"]}
    assert steps["fit"]["reason"] == why
    last = h.last_reasons("p")
    assert last is not None and last[0] == rid
    assert recorded_reason(last[1]["fit"]) == f"served: {why}"
    assert recorded_reason(last[1]["src"]) == "ran: cache disabled for this step"
    assert h.last_reasons("other") is None


def test_step_times_are_each_steps_latest_own_time_in_its_pipeline(tmp_path: Path) -> None:
    h = History.for_root(str(tmp_path))
    for i, (pipeline, steps) in enumerate([
            ("p", [StepRun("a", status="succeeded", started=0.0, ended=0.5),
                   StepRun("b", status="succeeded", started=0.0, ended=0.25)]),
            ("p", [StepRun("a", status="succeeded", started=0.0, ended=0.125),
                   StepRun("b", status="succeeded", cached=True, started=0.0, ended=9.0),
                   StepRun("c", status="failed", started=0.0, ended=9.0)]),
            ("q", [StepRun("a", status="succeeded", started=0.0, ended=7.0)])]):
        rid = new_run_id()
        h.start_run(rid, pipeline, {}, str(tmp_path), 100.0 + i)
        h.record_steps(rid, [(s, None) for s in steps])
    # a: the later run's; b: the run it really ran in (not the cached one); c failed
    assert h.step_times("p") == {"a": 0.125, "b": 0.25}
    assert h.step_times("q") == {"a": 7.0}
    assert h.step_times("p", runs=1) == {"a": 0.125}


def test_a_history_locked_past_the_busy_timeout_names_the_file(tmp_path: Path) -> None:
    from airflowdsl.errors import StoreError

    h = History.for_root(str(tmp_path))
    other = sqlite3.connect(tmp_path / "history.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer, stopped mid-transaction
    h._conn.execute("PRAGMA busy_timeout = 100")  # the 60 s of the real limit, shortened
    try:
        with pytest.raises(StoreError, match=r"history\.sqlite stayed locked"):
            h.start_run(new_run_id(), "p", {}, str(tmp_path), time.time())
    finally:
        other.execute("ROLLBACK")
        other.close()
    h.start_run(new_run_id(), "p", {}, str(tmp_path), time.time())  # free again: works
