"""How fast the UI's runs page renders for a store with 1,000 runs (target: < 300 ms).

    python bench/ui_runs_page.py [--runs 1000] [--repeat 20]

Builds a store of N recorded runs (5 steps each, two pipelines, mixed statuses) through
the public History API, serves it with the real uvicorn server on a free port, then
measures, each as median and max over --repeat tries:

- ``http``: one GET of the page over HTTP (urllib; the server renders the HTML: SQL for
  the page of 50 + the step counts + Jinja2);
- ``browser``: headless Chromium (Debian's, via Playwright) loading the page, from
  navigation start to the ``load`` event (HTML, CSS, JS incl. Chart.js, layout);
- ``sql floor``: ``History.runs_page`` alone in this process, the baseline the page
  cannot beat.

Also the filtered page (one pipeline, status failed), the last page (an OFFSET at the
end), all 1,000 runs on one page (``?per_page=1000``, the most it shows), and a run page. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "ui"), str(ROOT / "tests" / "resources")]

from ui_stores import build_many_runs  # noqa: E402

from airflowdsl.runtime.history import History  # noqa: E402


def _timed(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn()  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    import uvicorn

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView
    from airflowdsl.ui.server import bind

    tmp = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    root = tmp / "store"
    t = time.perf_counter()
    build_many_runs(root, args.runs)
    print(f"store: {args.runs} runs x 5 steps built in {time.perf_counter() - t:.1f}s")
    view = StoreView.open(str(root))
    sock = bind("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(view), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    last_page = (args.runs + 49) // 50
    run_id = History.for_root(str(root)).runs_page(limit=1)[0][0]["id"]
    pages = {"runs page": "/", "filtered": "/?pipeline=beta&status=failed",
             f"page {last_page}": f"/?page={last_page}", "all on one": "/?per_page=1000",
             "a run": f"/runs/{run_id}"}
    rows: list[tuple[str, str, float, float]] = []
    for label, path in pages.items():
        def get(path: str = path) -> None:
            with urllib.request.urlopen(base + path) as r:
                assert r.status == 200
                r.read()

        rows.append((label, "http", *_timed(get, args.repeat)))
    h = History(root / "history.sqlite", readonly=True)
    rows.append(("runs page", "sql floor", *_timed(lambda: h.runs_page(limit=50), args.repeat)))

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            pg = b.new_page()
            for label, path in (("runs page", "/"), ("all on one", "/?per_page=1000"),
                                ("a run", f"/runs/{run_id}")):
                loads = []
                for i in range(args.repeat + 1):
                    pg.goto(base + path, wait_until="load")
                    ms = pg.evaluate("() => { const n = performance.getEntriesByType("
                                     "'navigation')[0]; return n.loadEventEnd - n.startTime; }")
                    if i:
                        loads.append(ms)
                rows.append((label, "browser", statistics.median(loads), max(loads)))
            b.close()
    else:
        print("no chromium: browser timings skipped")
    server.should_exit = True
    thread.join(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.runs} runs, median/max of {args.repeat}")
    print(f"{'page':<12} {'how':<10} {'median ms':>10} {'max ms':>8}")
    for label, how, med, mx in rows:
        print(f"{label:<12} {how:<10} {med:>10.1f} {mx:>8.1f}")


if __name__ == "__main__":
    main()
