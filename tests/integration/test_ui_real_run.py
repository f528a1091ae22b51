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
