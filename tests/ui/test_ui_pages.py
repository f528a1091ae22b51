"""The UI's pages over HTTP (Starlette's TestClient; no browser): what each page holds,
bad input, read-only, a concurrent writer, the ``airflowdsl ui`` command."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ui_stores import RUNS, build_many_runs

from airflowdsl.runtime.history import History
from airflowdsl.runtime.run import StepRun
from airflowdsl.ui.data import metric_group, report_charts, trial_view
from airflowdsl.ui.layout import layout


def test_runs_page_lists_newest_first(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200
    ids = re.findall(r'class="run-row" data-run="([^"]+)"', r.text)
    assert ids == [RUNS["tune"], RUNS["failed"], RUNS["ok"]]
    row = r.text[r.text.index(f'data-run="{RUNS["failed"]}"'):]
    row = row[:row.index("</tr>")]
    assert "failed" in row and 'class="num executed">2<' in row and 'class="num cached">2<' in row


def test_runs_page_filters(client: Any) -> None:
    r = client.get("/?status=failed")
    assert re.findall(r'class="run-row" data-run="([^"]+)"', r.text) == [RUNS["failed"]]
    r = client.get("/?pipeline=ui_tune")
    assert re.findall(r'class="run-row" data-run="([^"]+)"', r.text) == [RUNS["tune"]]
    assert "No runs match" in client.get("/?pipeline=nope").text


def test_paging_of_many_runs(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView

    build_many_runs(tmp_path / "s", 120)
    c = TestClient(create_app(StoreView.open(str(tmp_path / "s"))))
    first = re.findall(r'class="run-row" data-run="([^"]+)"', c.get("/").text)
    third = c.get("/?page=3")
    assert len(first) == 50 and first[0] == "20260101-000119-000077"
    assert len(re.findall('class="run-row"', third.text)) == 20 and "page 3 of 3" in third.text
    beta_failed = c.get("/?pipeline=beta&status=failed").text  # i % 2 == 1 and i % 5 == 3
    assert len(re.findall('class="run-row"', beta_failed)) == 12


def test_run_page_draws_the_dag_by_status(client: Any) -> None:
    r = client.get(f"/runs/{RUNS['failed']}")
    assert r.status_code == 200
    nodes = dict(re.findall(r'<g class="node st-\w+[^"]*" data-step="(\w+)" data-status="(\w+)"',
                            r.text))
    assert nodes == {"make_data": "cached", "featurize": "cached", "fit": "succeeded",
                     "evaluate": "failed"}
    assert r.text.count('class="edge"') == 4  # make_data>featurize>fit>evaluate, featurize>evaluate
    assert "evaluation blew up on purpose" in r.text


def test_step_panel_of_a_failed_step(client: Any) -> None:
    r = client.get(f"/runs/{RUNS['failed']}/steps/evaluate")
    assert r.status_code == 200
    t = r.text
    assert 'class="kind">predict<' in t and "Traceback (most recent call last)" in t
    assert "param fail changed: False -&gt; True" in t  # why it ran (vs the ok run)
    assert "upstream fit changed" in t
    assert re.search(r'data-step="fit">fit</a></td><td>Checkpoint</td><td>json</td>', t)
    assert "evaluate: scoring" in t  # its log


def test_step_panel_of_a_train_step(client: Any) -> None:
    t = client.get(f"/runs/{RUNS['ok']}/steps/fit").text
    assert "6 reports" in t and 'data-metric="loss"' in t and 'data-metric="accuracy"' in t
    assert t.count("/ckpt/checkpoint_") == 3  # checkpoints at iterations 2, 4, 6
    assert "<li>never run before</li>" in t
    cached = client.get(f"/runs/{RUNS['failed']}/steps/featurize").text
    assert "served from the cache" in cached and "<td>scale</td>" in cached


def test_step_panel_of_a_tune_step(client: Any) -> None:
    t = client.get(f"/runs/{RUNS['tune']}/steps/search").text
    assert t.count('<tr class="trial') == 4
    best = re.search(r'<tr class="trial best" data-trial="(\w+)"', t)
    assert best and best.group(1) == "t2"
    # no metric named in the rows: the first one the best trial is extreme in
    assert 'class="scatter" data-metric="loss"' in t
    assert '<td class="trial-error">ValueError: x=3 is not allowed</td>' in t
    assert "<li>forced</li>" in t  # the reason the runtime recorded


def test_graph_rebuilt_from_keys_without_dag_json(client: Any) -> None:
    r = client.get(f"/runs/{RUNS['tune']}")
    assert 'data-step="make_data"' in r.text and 'data-step="search"' in r.text
    assert r.text.count('class="edge"') == 1


def test_compare(client: Any) -> None:
    r = client.get(f"/compare?a={RUNS['ok']}&b={RUNS['failed']}")
    assert r.status_code == 200
    t = r.text
    assert re.search(r'<tr class="changed" data-param="epochs"><td>epochs</td>'
                     r'<td class="mono">6</td><td class="mono">8</td>', t)
    assert re.search(r'<tr class="same" data-step="make_data">', t)
    assert "param epochs changed: 6 -&gt; 8" in t
    assert re.search(r'data-metric="fit.accuracy"><td>fit</td><td>accuracy</td>', t)


def test_api_status(client: Any) -> None:
    r = client.get(f"/api/runs/{RUNS['failed']}").json()
    assert r["status"] == "failed" and r["steps"]["evaluate"]["status"] == "failed"
    assert client.get("/api/runs/nope").status_code == 404


def test_bad_input_is_a_404_page(client: Any) -> None:
    for url in ("/runs/no-such-run", f"/runs/{RUNS['ok']}/steps/nope", f"/runs/{RUNS['ok']}?step=x",
                f"/runs/{RUNS['ok']}/logs/..%2F..%2Fhistory", "/compare?a=x&b=y", "/nowhere"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert 'id="error"' in r.text and "back to the runs" in r.text
    assert "no run &#39;no-such-run&#39;" in client.get("/runs/no-such-run").text
    log = client.get(f"/runs/{RUNS['ok']}/logs/fit")
    assert log.status_code == 200 and log.text.startswith("epoch 1: loss 1.000")


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_pages_change_nothing_in_the_store(demo_store: tuple[Path, dict[str, str]],
                                           client: Any) -> None:
    root = demo_store[0]
    before = _digest(root)
    for url in ("/", f"/runs/{RUNS['failed']}?step=evaluate", f"/runs/{RUNS['ok']}/steps/fit",
                f"/compare?a={RUNS['ok']}&b={RUNS['failed']}", f"/api/runs/{RUNS['tune']}"):
        assert client.get(url).status_code == 200
    after = _digest(root)
    assert {k: v for k, v in after.items() if not k.endswith(("-wal", "-shm"))} == \
        {k: v for k, v in before.items() if not k.endswith(("-wal", "-shm"))}


def test_survives_a_concurrent_writer(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView

    root = tmp_path / "s"
    build_many_runs(root, 3)
    c = TestClient(create_app(StoreView.open(str(root))))
    stop = threading.Event()

    def write() -> None:  # another process's run, as fast as SQLite takes it
        h = History.for_root(str(root))
        i = 0
        while not stop.is_set():
            rid = f"live-{i}"
            h.start_run(rid, "live", {}, str(root), time.time())
            h.record_steps(rid, [(StepRun("a", status="succeeded", started=1, ended=2), None)])
            h.finish_run(rid, "succeeded", time.time())
            i += 1
        h.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(40):
            assert c.get("/").status_code == 200
            assert c.get("/api/runs/20260101-000000-000000").status_code == 200
    finally:
        stop.set()
        writer.join()
    assert "live-0" in c.get("/?pipeline=live&page=1").text or \
        c.get("/?pipeline=live").status_code == 200


def test_empty_store_then_first_run(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView

    root = tmp_path / "s"
    root.mkdir()
    c = TestClient(create_app(StoreView.open(str(root))))
    assert "No runs recorded in this store yet" in c.get("/").text
    assert not (root / "history.sqlite").exists()  # the page created nothing
    (root / "history.sqlite").touch()  # a run is creating it: no tables yet
    assert "No runs recorded in this store yet" in c.get("/").text
    build_many_runs(root, 1)
    assert 'data-run="20260101-000000-000000"' in c.get("/").text


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflowdsl.cli", "ui", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_cli_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    r = _cli("--store", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: no store at {tmp_path / 'nope'} (run a pipeline first, " \
        "or pass --store)"


def test_cli_serves_and_stops(tmp_path: Path) -> None:
    import urllib.request

    build_many_runs(tmp_path / "s", 2)
    proc = subprocess.Popen([sys.executable, "-m", "airflowdsl.cli", "ui", "--store",
                             str(tmp_path / "s"), "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        with urllib.request.urlopen(url.group(0), timeout=10) as resp:
            assert resp.status == 200 and b"20260101-000001-000001" in resp.read()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    from airflowdsl.errors import LoadError
    from airflowdsl.ui.server import bind

    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(LoadError, match="in use"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_layout_columns_and_rows() -> None:
    lay = layout(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    xs = {n: b.x for n, b in lay.boxes.items()}
    assert xs["a"] < xs["b"] == xs["c"] < xs["d"]
    assert lay.boxes["b"].y != lay.boxes["c"].y and len(lay.edges) == 4


def test_metric_groups_and_trials() -> None:
    assert metric_group("train-logloss") == ("logloss", "train")
    assert metric_group("valid_loss") == ("loss", "valid")
    assert metric_group("accuracy") == ("accuracy", "accuracy")
    charts = report_charts([{"train-rmse": 2.0, "valid-rmse": 3.0, "training_iteration": 1,
                             "checkpoint": None}, {"train-rmse": 1.0, "valid-rmse": float("nan"),
                                                   "training_iteration": 2}])
    assert charts == [{"metric": "rmse", "series": [
        {"label": "train", "points": [(1, 2.0), (2, 1.0)]},
        {"label": "valid", "points": [(1, 3.0)]}]}]
    flat = trial_view([{"trial_id": "a", "config/x": 1, "score": 0.5, "status": "TERMINATED"},
                       {"trial_id": "b", "config/x": 2, "score": 0.9, "best": True,
                        "metric": "score"}])
    assert flat["config_keys"] == ["x"] and flat["metric"] == "score" and flat["best"] == "b"
    # a trainer's nested param_space, as tune.record_trials writes it; the chart's metric is
    # the one the best trial alone is extreme in (valid-logloss), not a tie (train-error)
    real = trial_view([{"trial_id": str(i), "config": {"params": {"max_depth": d, "eta": e}},
                        "metrics": {"train-error": te, "valid-logloss": vl},
                        "status": "TERMINATED", "best": i == 1}
                       for i, (d, e, te, vl) in enumerate([(2, 0.1, 0.01, 0.16), (2, 0.3, 0.0, 0.14),
                                                           (4, 0.3, 0.0, 0.18)])])
    assert real["numeric_config"] == ["params.eta", "params.max_depth"]
    assert real["metric"] == "valid-logloss"


def test_run_graph_json_roundtrip(tmp_path: Path) -> None:
    import ui_pipelines

    from airflowdsl.runtime.rungraph import read_run_graph, write_run_graph

    compiled = ui_pipelines.ui_demo.compile(epochs=3)
    path = write_run_graph(str(tmp_path), "r1", compiled)
    assert path == os.path.join(str(tmp_path), "runs", "r1", "dag.json")
    g = read_run_graph(str(tmp_path), "r1")
    assert g is not None and [n["name"] for n in g["nodes"]] == compiled.order
    fit = next(n for n in g["nodes"] if n["name"] == "fit")
    assert fit["params"] == {"epochs": 3} and fit["inputs"] == {"data": ["featurize", None]}
    assert fit["output_types"] == ["Checkpoint"] and fit["kind"] == "train"
    assert read_run_graph(str(tmp_path), "nope") is None
    assert write_run_graph("s3://bucket/x", "r1", compiled) is None


def test_history_from_before_step_records(tmp_path: Path) -> None:
    """An older history (no step_records table, no reason column) still shows."""
    import sqlite3

    from starlette.testclient import TestClient

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView

    root = tmp_path / "old"
    root.mkdir()
    db = sqlite3.connect(root / "history.sqlite")
    db.executescript("""
        CREATE TABLE runs (id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, params TEXT,
            status TEXT NOT NULL, started REAL, ended REAL, git_commit TEXT, store TEXT,
            error TEXT, traceback TEXT);
        CREATE TABLE steps (run_id TEXT NOT NULL, name TEXT NOT NULL, kind TEXT,
            status TEXT NOT NULL, cached INTEGER NOT NULL DEFAULT 0, started REAL, ended REAL,
            duration_s REAL, cache_key TEXT, components TEXT, artifacts TEXT, error TEXT,
            traceback TEXT, PRIMARY KEY (run_id, name));
        CREATE TABLE metrics (run_id TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL,
            value REAL);
        INSERT INTO runs VALUES ('r1', 'p', '{}', 'succeeded', 1.0, 2.0, NULL, NULL, NULL, NULL);
        INSERT INTO steps VALUES ('r1', 'a', 'train', 'succeeded', 0, 1.0, 2.0, 1.0, NULL,
            NULL, '[]', NULL, NULL);
    """)
    db.close()
    c = TestClient(create_app(StoreView.open(str(root))))
    assert 'data-run="r1"' in c.get("/").text
    r = c.get("/runs/r1?step=a")
    assert r.status_code == 200 and 'data-step="a"' in r.text


def test_history_read_accessors(tmp_path: Path) -> None:
    """History(readonly=True), runs_page, pipelines, previous_components (added for the UI)."""
    import sqlite3

    root = tmp_path / "s"
    build_many_runs(root, 12, steps=4)
    h = History(root / "history.sqlite", readonly=True)
    rows, total = h.runs_page("beta", None, limit=3, offset=1)
    assert total == 6 and [r["id"][9:15] for r in rows] == ["000009", "000007", "000005"]
    r9 = rows[0]  # i=9: i % 4 = 1 cached step of 4
    assert (r9["n_steps"], r9["n_cached"], r9["n_executed"]) == (4, 1, 3)
    assert h.runs_page(status="cancelled")[1] == 2 and h.pipelines() == ["alpha", "beta"]
    with pytest.raises(sqlite3.OperationalError):
        h._conn.execute("DELETE FROM runs")  # noqa: SLF001 - proving it cannot write
    with pytest.raises(FileNotFoundError):
        History(tmp_path / "none.sqlite", readonly=True)
    assert not (tmp_path / "none.sqlite").exists()
    w = History.for_root(str(root))
    w.start_run("x1", "p", {}, str(root), 100.0)
    w.record_steps("x1", [(StepRun("a", status="succeeded"), {"params": {"v": 1}})])
    w.start_run("x2", "p", {}, str(root), 200.0)
    w.record_steps("x2", [(StepRun("a", status="succeeded"), {"params": {"v": 2}})])
    assert h.previous_components("p", "a", 200.0) == {"params": {"v": 1}}
    assert h.previous_components("p", "a", 100.0) is None


def test_uri_store_runs_are_read_from_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflowdsl.runtime.history import History
    from airflowdsl.ui.data import StoreView
    from tests.moto_s3 import moto_s3

    monkeypatch.delenv("AIRFLOWDSL_HISTORY", raising=False)
    with moto_s3() as s3:
        History.for_root(s3.uri("store")).start_run("20260101-000000-abcdef", "p", {},
                                                    s3.uri("store"), 1.0)
        view = StoreView.open(s3.uri("store"))  # no SQLite file on this machine needed
        assert view.history is not None
        assert [r["id"] for r in view.history.runs()] == ["20260101-000000-abcdef"]


def test_a_failing_page_is_a_500_page(demo_store: tuple[Path, dict[str, str]],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView

    view = StoreView.open(str(demo_store[0]))

    def broken(*a: Any, **k: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(view, "run", broken)
    c = TestClient(create_app(view), raise_server_exceptions=False)
    r = c.get(f"/runs/{RUNS['ok']}")
    assert r.status_code == 500 and "RuntimeError: disk on fire" in r.text and 'id="error"' in r.text
    assert c.get(f"/api/runs/{RUNS['ok']}").json() == {"error": "RuntimeError: disk on fire"}
