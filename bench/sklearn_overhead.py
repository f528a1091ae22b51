"""SklearnTrainer overhead vs plain scikit-learn: RandomForest + 5-fold cv on breast_cancer.

    python bench/sklearn_overhead.py [--runs 3] [--trees 100] [--folds 5]

One job, five ways (medians of ``--runs`` after one discarded warm-up each, contenders
alternating):

- ``sklearn``: ``fit`` on the train rows, ``score`` on the validation rows,
  ``cross_validate(n_jobs=1)`` on the train rows -- all in this process.
- ``sklearn+joblib-ray``: the same, with ``cross_validate(n_jobs=-1)`` under
  ``joblib.parallel_backend("ray")`` (what "let n_jobs use Ray" means naively).
- ``trainer auto`` / ``trainer local`` / ``trainer ray``: ``SklearnTrainer`` with
  ``parallelize_cv=None/False/True``, datasets from ``ray.data.from_pandas`` (built inside
  the timed region), one report + checkpoint written to a temp dir.

``ray.init`` is timed once (Ray's fixed start cost, paid by every Ray program). Ray is
started here with ``num_cpus=2``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pandas as pd


def _data() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    return train_test_split(frame, test_size=0.25, random_state=0)


def plain(train: pd.DataFrame, valid: pd.DataFrame, trees: int, folds: int,
          joblib_ray: bool = False) -> float:
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import KFold, cross_validate

    x, y = train.drop(columns="target"), train["target"]
    est = RandomForestClassifier(n_estimators=trees, random_state=0).fit(x, y)
    est.score(valid.drop(columns="target"), valid["target"])
    ctx: Any = joblib.parallel_backend("ray") if joblib_ray else contextlib.nullcontext()
    with ctx:
        scores = cross_validate(RandomForestClassifier(n_estimators=trees, random_state=0), x, y,
                                cv=KFold(folds, shuffle=True, random_state=0),
                                n_jobs=-1 if joblib_ray else 1)
    return float(scores["test_score"].mean())


def trainer(train: pd.DataFrame, valid: pd.DataFrame, trees: int, folds: int,
            parallelize: bool | None) -> float:
    import ray
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import KFold

    from airflowdsl.air import RunConfig
    from airflowdsl.train.sklearn import SklearnTrainer

    with tempfile.TemporaryDirectory() as storage:
        result = SklearnTrainer(
            estimator=RandomForestClassifier(n_estimators=trees, random_state=0),
            datasets={"train": ray.data.from_pandas(train), "valid": ray.data.from_pandas(valid)},
            label_column="target", cv=KFold(folds, shuffle=True, random_state=0),
            parallelize_cv=parallelize, run_config=RunConfig(storage_path=storage),
        ).fit()
    trainer.last_parallel = result.metrics["cv/parallel"]  # type: ignore[attr-defined]
    return float(result.metrics["cv/test_score_mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()

    import ray
    from ray.util.joblib import register_ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    register_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False

    train, valid = _data()
    jobs: dict[str, Callable[[], float]] = {
        "sklearn": lambda: plain(train, valid, args.trees, args.folds),
        "sklearn+joblib-ray": lambda: plain(train, valid, args.trees, args.folds, True),
        "trainer auto": lambda: trainer(train, valid, args.trees, args.folds, None),
        "trainer local": lambda: trainer(train, valid, args.trees, args.folds, False),
        "trainer ray": lambda: trainer(train, valid, args.trees, args.folds, True),
    }
    times: dict[str, list[float]] = {name: [] for name in jobs}
    scores: dict[str, float] = {}
    auto_ran: list[str] = []
    for run in range(args.runs + 1):
        for name, job in jobs.items():
            t0 = time.perf_counter()
            scores[name] = job()
            if run:  # run 0 warms up (imports, Ray workers)
                times[name].append(time.perf_counter() - t0)
            if run and name == "trainer auto":
                auto_ran.append(trainer.last_parallel)  # type: ignore[attr-defined]
    base = statistics.median(times["sklearn"])
    print(f"ray.init: {ray_start:.2f} s; RandomForest({args.trees}) + {args.folds}-fold cv, "
          f"426 train rows; medians of {args.runs}")
    print(f"{'contender':<20} {'wall s':>7} {'vs sklearn':>10} {'cv mean':>8}  runs")
    for name, values in times.items():
        med = statistics.median(values)
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:<20} {med:7.2f} {med / base:9.2f}x {scores[name]:8.4f}  {runs}")
    print(f"trainer auto ran its cv: {', '.join(auto_ran)}; load average at the end: "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ray.shutdown()


if __name__ == "__main__":
    main()
