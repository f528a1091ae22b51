"""The UI in a real headless Chromium (Debian's ``chromium`` driven by Playwright with the
system executable; scripts/install.sh installs both). A real uvicorn server on the demo
store (tests/ui/ui_stores.py). A screenshot of each page goes to ``$AIRFLOWDSL_UI_SHOTS``
(``AIRFLOWDSL_UI_SHOTS=docs/ui`` refreshes the README's pictures), else to a temp folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ui_stores import RUNS, T0, build_many_runs, wait_for

from airflowdsl.dsl.render import STATUS_COLOR

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = os.environ.get("AIRFLOWDSL_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium executable (Debian: apt-get install chromium; "
                "scripts/install.sh does it)", allow_module_level=True)


class Server:
    """uvicorn serving the UI of ``root`` from a thread, on a free port."""

    def __init__(self, root: Path) -> None:
        import uvicorn

        from airflowdsl.ui.app import create_app
        from airflowdsl.ui.data import StoreView
        from airflowdsl.ui.server import bind

        self.view = StoreView.open(str(root))
        self.sock: socket.socket = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.view), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.view.close()
        self.sock.close()


@pytest.fixture(scope="module")
def server(demo_store: tuple[Path, dict[str, str]]) -> Iterator[Server]:
    s = Server(demo_store[0])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.set_default_timeout(10_000)
    pg.errors = errors
    yield pg
    ctx.close()
    assert not [e for e in errors if "404" not in e], errors  # 404s are tested on purpose


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("AIRFLOWDSL_UI_SHOTS") or tmp_path_factory.mktemp("shots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (0, 2, 4)))


def _fill(page: Any, step: str) -> str:
    return str(page.eval_on_selector(f'svg.dag .node[data-step="{step}"] .box',
                                     "e => getComputedStyle(e).fill"))


def test_runs_page_filter_and_compare(server: Server, page: Any, shots: Path) -> None:
    page.goto(server.url + "/")
    rows = page.locator("tr.run-row")
    assert rows.count() == 3
    assert rows.nth(0).get_attribute("data-run") == RUNS["tune"]
    page.screenshot(path=str(shots / "runs.png"), full_page=True)
    page.select_option("select[name=status]", "failed")  # submits the filter form
    page.wait_for_url("**status=failed**")
    assert [r.get_attribute("data-run") for r in page.locator("tr.run-row").all()] == \
        [RUNS["failed"]]
    page.goto(server.url + "/?pipeline=ui_demo")
    assert page.locator("#compare-btn").is_disabled()
    page.check(f'input.pick[value="{RUNS["ok"]}"]')
    page.check(f'input.pick[value="{RUNS["failed"]}"]')
    page.click("#compare-btn")
    page.wait_for_url("**/compare?**")
    assert page.locator('tr.changed[data-param="epochs"] td').all_inner_texts() == \
        ["epochs", "6", "8"]
    assert "param epochs changed: 6 -> 8" in page.inner_text('tr[data-step="fit"] td.why')
    assert page.locator('tr.same[data-step="make_data"]').count() == 1
    page.screenshot(path=str(shots / "compare.png"), full_page=True)


def test_failed_run_click_through(server: Server, page: Any, shots: Path) -> None:
    page.goto(server.url + "/")
    page.click(f'a[href="/runs/{RUNS["failed"]}"]')
    page.wait_for_selector("svg.dag")
    assert page.inner_text("#run-status") == "failed"
    assert _fill(page, "evaluate") == _rgb(STATUS_COLOR["failed"])
    assert _fill(page, "make_data") == _rgb(STATUS_COLOR["cached"])
    assert _fill(page, "fit") == _rgb(STATUS_COLOR["succeeded"])
    page.click('svg.dag .node[data-step="evaluate"]')
    panel = page.locator('.step-panel[data-step="evaluate"]')
    panel.wait_for()
    assert "ValueError: evaluation blew up on purpose" in panel.locator("pre.traceback").inner_text()
    assert "param fail changed: False -> True" in panel.locator("ul.why").inner_text()
    assert panel.locator("pre.log").inner_text().startswith("evaluate: scoring")
    assert page.url.endswith("?step=evaluate")
    page.screenshot(path=str(shots / "run_failed.png"), full_page=True)
    panel.locator('a.step-link[data-step="fit"]').click()  # an input's upstream
    page.locator('.step-panel[data-step="fit"]').wait_for()
    page.go_back()
    page.locator('.step-panel[data-step="evaluate"]').wait_for()


def test_train_step_charts(server: Server, page: Any, shots: Path) -> None:
    page.goto(f"{server.url}/runs/{RUNS['ok']}")
    page.click('svg.dag .node[data-step="fit"]')
    page.locator('.step-panel[data-step="fit"] figure.chart canvas').first.wait_for()
    data = page.evaluate("""() => Array.from(document.querySelectorAll('figure.chart')).map(f => {
        const c = Chart.getChart(f.querySelector('canvas'));
        return [f.dataset.metric, c.data.datasets.map(d => [d.label, d.data.length, d.data[0].y])];
    })""")
    assert data == [["loss", [["train", 6, 1.0], ["valid", 6, 1.2]]],
                    ["accuracy", [["accuracy", 6, 0.5]]]]
    assert page.locator("table.checkpoints tbody tr").count() == 3
    page.screenshot(path=str(shots / "train_step.png"), full_page=True)


def test_tune_step_trials(server: Server, page: Any, shots: Path) -> None:
    page.goto(f"{server.url}/runs/{RUNS['tune']}?step=search")
    assert page.locator("table.trials tbody tr").count() == 4
    assert page.locator("tr.trial.best").get_attribute("data-trial") == "t2"
    fig = page.locator("figure.scatter")
    assert fig.get_attribute("data-x") == "lr" and fig.get_attribute("data-y") == "loss"
    page.select_option("figure.scatter select.scatter-x", "x")
    page.select_option("figure.scatter select.scatter-y", "score")
    assert fig.get_attribute("data-x") == "x" and fig.get_attribute("data-y") == "score"
    sets = page.evaluate("""() => Chart.getChart(document.querySelector('figure.scatter canvas'))
        .data.datasets.map(d => [d.label, d.data.map(p => [p.x, p.y])])""")
    assert sets == [["trials", [[0, -3], [1, 0], [3, 0]]], ["best", [[2, 1]]]]
    page.screenshot(path=str(shots / "tune_step.png"), full_page=True)


def test_unknown_run_is_a_404_page(server: Server, page: Any) -> None:
    resp = page.goto(server.url + "/runs/no-such-run")
    assert resp is not None and resp.status == 404
    assert page.inner_text("#error h1").startswith("404")
    page.click("text=back to the runs")
    page.wait_for_selector("tr.run-row")


def test_live_run_updates(tmp_path: Path, browser: Any, shots: Path) -> None:
    """A run in progress: the page recolours steps as the history records them, then
    shows the finished run, without a manual reload."""
    import networkx as nx

    from airflowdsl.runtime.history import History
    from airflowdsl.runtime.run import StepRun
    from airflowdsl.runtime.rungraph import write_run_graph

    root = tmp_path / "live"
    build_many_runs(root, 1, steps=3)
    h = History.for_root(str(root))
    rid = "20260601-000000-live00"
    h.start_run(rid, "alpha", {}, str(root), T0 + 10_000)
    g = nx.DiGraph([("s0", "s1"), ("s1", "s2")])
    nx.set_node_attributes(g, "step", "kind")
    write_run_graph(str(root), rid, SimpleNamespace(name="alpha", graph=g,
                                                    order=["s0", "s1", "s2"]))
    h.record_steps(rid, [(StepRun("s0", "step", "succeeded", started=1, ended=2), None)])
    srv = Server(root)
    pg = browser.new_page()

    def status(step: str) -> str | None:
        return pg.get_attribute(f'svg.dag .node[data-step="{step}"]', "data-status")

    try:
        pg.goto(srv.url + "/")
        assert pg.locator(f'tr.run-row[data-run="{rid}"] .badge').inner_text() == "running"
        pg.goto(f"{srv.url}/runs/{rid}")
        assert pg.inner_text("#run-status") == "running"
        assert (status("s0"), status("s1"), status("s2")) == ("succeeded", "running", "pending")
        h.record_steps(rid, [(StepRun("s1", "step", "succeeded", started=2, ended=3), None)])
        wait_for(lambda: status("s1") == "succeeded" and status("s2") == "running")
        assert _fill(pg, "s1") == _rgb(STATUS_COLOR["succeeded"])
        pg.screenshot(path=str(shots / "live_run.png"), full_page=True)
        h.record_steps(rid, [(StepRun("s2", "step", "failed", started=3, ended=4,
                                      error="E: boom"), None)])
        h.finish_run(rid, "failed", T0 + 10_010, "step 's2' failed: E: boom")
        pg.wait_for_function("() => document.getElementById('run-status').textContent"
                             " === 'failed'", timeout=15_000)
        assert pg.get_attribute('svg.dag .node[data-step="s2"]', "data-status") == "failed"
    finally:
        pg.close()
        srv.stop()
        h.close()
