"""The UI on a store written by real runs (the executor on a local Ray): the run graph
file, training reports, a failed step's traceback and log, compare (no browser; the
browser tests in tests/ui use a store written through the History API)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the ui extra is not installed")

pytestmark = pytest.mark.integration


def test_ui_shows_real_runs(ray_session: None, store_dir: Path) -> None:
    import ui_pipelines
    from starlette.testclient import TestClient

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView

    ok = ui_pipelines.ui_demo.run(store=store_dir, epochs=4)
    bad = ui_pipelines.ui_demo.run(store=store_dir, epochs=4, fail=True)
    assert ok.status == "succeeded" and bad.status == "failed"
    assert (store_dir / "runs" / ok.id / "dag.json").is_file()

    c = TestClient(create_app(StoreView.open(str(store_dir))))
    page = c.get(f"/runs/{bad.id}").text
    nodes = dict(re.findall(r'data-step="(\w+)" data-status="(\w+)"', page))
    assert nodes == {"make_data": "cached", "featurize": "cached", "fit": "cached",
                     "evaluate": "failed"}
    fit = c.get(f"/runs/{ok.id}/steps/fit").text
    assert "4 reports" in fit and 'data-metric="loss"' in fit and 'data-metric="accuracy"' in fit
    assert fit.count("checkpoint_00000") == 2  # reports 2 and 4 saved one
    assert "<li>never run before</li>" in fit and "fit: 4 epochs on 64 rows" in fit
    ev = c.get(f"/runs/{bad.id}/steps/evaluate").text
    assert "ValueError: evaluation blew up on purpose" in ev and "evaluate: scoring" in ev
    assert "param fail changed: False -&gt; True" in ev
    cmp = c.get(f"/compare?a={ok.id}&b={bad.id}").text
    assert re.search(r'<tr class="changed" data-param="fail">', cmp)
    assert re.search(r'<tr class="same" data-step="fit">', cmp)


def test_ui_watches_a_real_run(ray_session: None, store_dir: Path) -> None:
    """While the executor writes a run, the status the live page polls shows it running,
    then finished; the server answers throughout."""
    import threading
    import time

    import ui_pipelines
    from starlette.testclient import TestClient

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView

    view = StoreView.open(str(store_dir))  # before the first run: no history yet
    c = TestClient(create_app(view))
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(
        ui_pipelines.ui_slow.run(store=store_dir, seconds=4.0)))
    worker.start()
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 120
    while worker.is_alive() and time.monotonic() < deadline:
        rows = view.runs_page("ui_slow", None, 1)["runs"]
        if rows:
            s = c.get(f"/api/runs/{rows[0]['id']}").json()
            seen.add((s["status"], s["steps"].get("nap", {}).get("status", "")))
            assert c.get(f"/runs/{rows[0]['id']}").status_code == 200
        time.sleep(0.2)
    worker.join()
    run = done[0]
    # make_data done, nap under way (finished steps reach the history within 0.25 s)
    assert ("running", "running") in seen, seen
    final = c.get(f"/api/runs/{run.id}").json()  # type: ignore[attr-defined]
    assert final["status"] == "succeeded" and final["steps"]["nap"]["status"] == "succeeded"
