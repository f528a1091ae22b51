"""Stores for the UI tests, written through the public APIs (real SQLite, real files):
``History`` for runs/steps/metrics/records, ``ArtifactStore.write`` for outputs,
``rungraph.write_run_graph`` for the DAG of the compiled pipelines in
tests/resources/ui_pipelines.py, and plain step log files. No Ray.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from airflowdsl.runtime.history import History
from airflowdsl.runtime.run import StepRun
from airflowdsl.runtime.rungraph import write_run_graph
from airflowdsl.runtime.runlog import run_log_dir
from airflowdsl.runtime.store import ArtifactStore

T0 = 1_780_000_000.0  # a fixed start time: pages show the same dates on every run


def key(*parts: Any) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()


def components(params: dict[str, Any], inputs: dict[str, str], code: str = "c1",
               contents: dict[str, str] | None = None) -> dict[str, Any]:
    """Key components as the runtime records them (``CacheKey.components()``); an input's
    content hash is ``contents[param]`` or a hash of its upstream's name."""
    contents = contents or {}
    return {"code": {"detail": {"fn": code}, "notes": {}},
            "params": {"detail": {k: key(v) for k, v in params.items()},
                       "notes": {k: repr(v) for k, v in params.items()}},
            "inputs": {"detail": {k: contents.get(k, key(up)) for k, up in inputs.items()},
                       "notes": dict(inputs)}}


def _log(root: Path, run_id: str, step: str, text: str) -> None:
    folder = run_log_dir(str(root), run_id)
    assert folder is not None
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{step}.log"), "w") as f:
        f.write(text)


def _step(name: str, kind: str, status: str, t: float, dur: float, *, cached: bool = False,
          **kw: Any) -> StepRun:
    return StepRun(name, kind, status, cached=cached, started=t, ended=t + dur, **kw)


def demo_run(root: Path, h: History, run_id: str, started: float, *, epochs: int,
             fail: bool, cached_upstream: bool) -> None:
    """One run of ``ui_demo`` (make_data -> featurize -> fit -> evaluate)."""
    import ui_pipelines

    compiled = ui_pipelines.ui_demo.compile(epochs=epochs, fail=fail)
    st = ArtifactStore(str(root))
    h.start_run(run_id, "ui_demo", dict(compiled.params), str(root), started)
    write_run_graph(str(root), run_id, compiled)
    data = {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.0, 1.0]}
    k_data, k_feat = key("make_data"), key("featurize")
    k_fit, k_eval = key("fit", epochs), key("evaluate", epochs, fail)
    m_data = st.manifest(k_data) or st.write(k_data, [data], pipeline="ui_demo", step="make_data")
    m_feat = st.manifest(k_feat) or st.write(k_feat, [data], pipeline="ui_demo", step="featurize")
    m_fit = st.write(k_fit, [{"weights": list(range(50))}], pipeline="ui_demo", step="fit")
    t = started + 0.1
    steps: list[tuple[StepRun, dict[str, Any] | None]] = [
        (_step("make_data", "ingest", "succeeded", t, 0.2, cached=cached_upstream,
               reason="cache hit" if cached_upstream else "not in cache", cache_key=k_data, artifacts=st.artifact_paths(m_data)),
         components({"n": 64}, {})),
        (_step("featurize", "preprocess", "succeeded", t + 0.3, 0.2, cached=cached_upstream,
               cache_key=k_feat, artifacts=st.artifact_paths(m_feat)),
         components({"scale": 2.0}, {"data": "make_data"})),
    ]
    reports = [{"train-loss": 1.0 / e, "valid-loss": 1.2 / e, "accuracy": 1 - 0.5 / e,
                "training_iteration": e, "time_total_s": 0.1 * e,
                "checkpoint": f"/ckpt/checkpoint_{e:06d}" if e % 2 == 0 else None}
               for e in range(1, epochs + 1)]
    steps.append((_step("fit", "train", "succeeded", t + 0.6, 2.5, cache_key=k_fit,
                        reason="upstream featurize re-runs; served from the cache if its "
                               "output is unchanged",
                        artifacts=st.artifact_paths(m_fit), records={"report": reports},
                        metrics={"train-loss": 1.0 / epochs, "accuracy": 1 - 0.5 / epochs}),
                  components({"epochs": epochs}, {"data": "featurize"})))
    if not cached_upstream:
        _log(root, run_id, "make_data", "make_data: 64 rows\n")
        _log(root, run_id, "featurize", "featurize: 64 rows, scale 2.0\n")
    _log(root, run_id, "fit", "".join(f"epoch {e}: loss {1.0 / e:.3f}\n"
                                      for e in range(1, epochs + 1)))
    if fail:
        tb = ('Traceback (most recent call last):\n  File "ui_pipelines.py", line 55, in '
              'evaluate\n    raise ValueError("evaluation blew up on purpose")\n'
              "ValueError: evaluation blew up on purpose\n")
        steps.append((_step("evaluate", "predict", "failed", t + 3.2, 0.1, cache_key=k_eval,
                            error="ValueError: evaluation blew up on purpose", traceback=tb),
                       components({"fail": fail}, {"ckpt": "fit", "data": "featurize"},
                             contents={"ckpt": k_fit})))
        _log(root, run_id, "evaluate", "evaluate: scoring\n" + tb)
        h.record_steps(run_id, steps)
        h.finish_run(run_id, "failed", t + 3.4, "step 'evaluate' failed: ValueError: evaluation "
                     "blew up on purpose", tb)
        return
    m_eval = st.write(k_eval, [{"accuracy": 0.9375, "rows": 64.0}], pipeline="ui_demo",
                      step="evaluate")
    steps.append((_step("evaluate", "predict", "succeeded", t + 3.2, 0.1, cache_key=k_eval,
                        artifacts=st.artifact_paths(m_eval),
                        metrics={"accuracy": 0.9 + epochs / 100, "rows": 64.0}),
                  components({"fail": fail}, {"ckpt": "fit", "data": "featurize"},
                             contents={"ckpt": k_fit})))
    _log(root, run_id, "evaluate", "evaluate: scoring\n")
    h.record_steps(run_id, steps)
    h.finish_run(run_id, "succeeded", t + 3.4)


def tune_run(root: Path, h: History, run_id: str, started: float) -> None:
    """One run of ``ui_tune`` with four trial records; no dag.json (the page rebuilds the
    graph from the recorded keys)."""
    h.start_run(run_id, "ui_tune", {"num_samples": 4}, str(root), started)
    trials = [{"trial_id": f"t{x}", "config": {"x": x, "lr": 0.1 * (x + 1)},
               "metrics": {"score": -((x - 2) ** 2) + 1.0, "loss": abs(x - 2),
                           "training_iteration": 2, "time_total_s": 0.5},
               "status": "ERROR" if x == 3 else "TERMINATED", "best": x == 2,
               "checkpoint": f"/trials/t{x}/checkpoint_000001",
               "error": "ValueError: x=3 is not allowed" if x == 3 else None}
              for x in range(4)]  # the rows airflowdsl.tune.record_trials writes
    h.record_steps(run_id, [
        (_step("make_data", "ingest", "succeeded", started, 0.1, cached=True,
               cache_key=key("make_data")), components({"n": 64}, {})),
        (_step("search", "tune", "succeeded", started + 0.2, 5.0, cache_key=key("search"),
               reason="forced",
               records={"trial": trials}, metrics={"best_x": 2.0}),
         components({"num_samples": 4}, {"data": "make_data"})),
    ])
    _log(root, run_id, "search", "trials 4/4 done\n")
    h.finish_run(run_id, "succeeded", started + 5.5)


RUNS = {"ok": "20260528-120000-aaaaaa", "failed": "20260528-121000-bbbbbb",
        "tune": "20260528-122000-cccccc"}


def build_demo_store(root: Path) -> dict[str, str]:
    """Three runs: ``ok`` (ui_demo, succeeded), ``failed`` (ui_demo epochs=8, evaluate
    fails, upstream cached), ``tune`` (ui_tune with trials)."""
    root.mkdir(parents=True, exist_ok=True)
    h = History.for_root(str(root))
    demo_run(root, h, RUNS["ok"], T0, epochs=6, fail=False, cached_upstream=False)
    demo_run(root, h, RUNS["failed"], T0 + 600, epochs=8, fail=True, cached_upstream=True)
    tune_run(root, h, RUNS["tune"], T0 + 1200)
    h.close()
    return dict(RUNS)


def build_many_runs(root: Path, n: int, *, steps: int = 5) -> None:
    """``n`` recorded runs of a ``steps``-step pipeline (for paging and the benchmark)."""
    root.mkdir(parents=True, exist_ok=True)
    h = History.for_root(str(root))
    statuses = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")
    for i in range(n):
        rid = f"20260101-{i:06d}-{i:06x}"
        started = T0 + 10 * i
        pipeline = ("alpha", "beta")[i % 2]
        h.start_run(rid, pipeline, {"i": i}, str(root), started)
        h.record_steps(rid, [(_step(f"s{j}", "step", "succeeded", started + j, 0.5,
                                    cached=j < i % steps, cache_key=key(i, j)), None)
                             for j in range(steps)])
        h.finish_run(rid, statuses[i % len(statuses)], started + steps)
    h.close()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
