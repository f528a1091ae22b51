"""Where ``SklearnTrainer``'s parallel work runs: Ray only when it pays.

Measured on a 2-core machine, joblib's Ray backend made a small GridSearchCV 4x slower
than ``n_jobs=1``, and each Ray task pays for a worker that must import scikit-learn and
receive the data. So, per job:

* **cv folds** run as one Ray task each (``num_cpus=1``, data shared through the object
  store) when ``parallelize_cv=True``, or, with ``parallelize_cv=None``, when the
  estimator does not parallelize itself (its ``n_jobs`` is unset or 1), at least two
  CPUs are free, and the estimated time wins: with ``t`` the measured full fit time and
  ``k`` folds, sequential cv costs about ``(k - 1) * t`` and Ray cv
  ``(k - 1) * t / min(k, free CPUs) + RAY_CV_OVERHEAD_S``. "Free" is Ray's available
  CPUs and, on a one-node cluster, also the CPUs the load average leaves idle (CPUs
  busy outside Ray make parallel folds no faster). Otherwise the folds run here, one
  after the other, through ``sklearn.model_selection.cross_validate``.
* **the estimator's own** ``n_jobs`` uses joblib's Ray backend only when the cluster has
  more than one node (more CPUs than this process can reach); on one node joblib's
  default (threads/processes on this machine) is faster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import ray

log = logging.getLogger(__name__)

#: fixed cost of a Ray cv round: measured on the 2-core dev machine, 5 trivial folds took
#: 0.1 s on warm workers but 2-11 s on fresh ones (each imports scikit-learn and pandas)
RAY_CV_OVERHEAD_S = 3.0


def own_n_jobs(estimator: Any) -> dict[str, Any]:
    """The estimator's parallelism parameters that are set (``n_jobs`` not None/1)."""
    params = estimator.get_params(deep=True)
    return {k: v for k, v in params.items() if k.split("__")[-1] == "n_jobs" and v not in (None, 1)}


def _multi_node() -> bool:
    if not ray.is_initialized():
        return False
    return sum(1 for node in ray.nodes() if node.get("Alive")) > 1


def free_cpus() -> int:
    """CPUs a Ray cv round could use now (see the module docstring)."""
    if not ray.is_initialized():
        return 0
    free = ray.available_resources().get("CPU", 0.0)
    if not _multi_node() and hasattr(os, "getloadavg"):
        # + 1: this process just fitted the estimator, which the load average still counts
        free = min(free, (os.cpu_count() or 1) - os.getloadavg()[0] + 1)
    return max(int(free), 0)


@contextlib.contextmanager
def joblib_backend(estimator: Any) -> Iterator[None]:
    """joblib's Ray backend for the estimator's ``n_jobs`` when that can reach more nodes."""
    if not own_n_jobs(estimator) or not _multi_node():
        yield
        return
    import joblib
    from ray.util.joblib import register_ray

    register_ray()
    with joblib.parallel_backend("ray"):
        yield


def cv_on_ray(estimator: Any, *, n_folds: int, fit_time: float,
              parallelize: bool | None) -> tuple[bool, str]:
    """Whether the folds go to Ray tasks, and why (logged)."""
    if parallelize is not None:
        return parallelize, "parallelize_cv=" + str(parallelize)
    if own_n_jobs(estimator):
        return False, "the estimator parallelizes itself (n_jobs)"
    free = free_cpus()
    width = min(n_folds, free)
    if width < 2:
        return False, f"{free} free CPU(s)"
    sequential = (n_folds - 1) * fit_time
    parallel = sequential / width + RAY_CV_OVERHEAD_S
    return parallel < sequential, f"estimated {sequential:.2f}s here vs {parallel:.2f}s on Ray"


def _one_fold(estimator: Any, x: Any, y: Any, fold: tuple[Any, Any], scoring: Any,
              fit_params: dict[str, Any]) -> dict[str, Any]:
    from sklearn.model_selection import cross_validate as sk_cross_validate

    single = {k: 1 for k in own_n_jobs(estimator)}  # one CPU per fold task
    return sk_cross_validate(estimator.set_params(**single), x, y, cv=[fold], scoring=scoring,
                             params=fit_params)


def cross_validate(estimator: Any, x: Any, y: Any, *, groups: Any, cv: Any, scoring: Any,
                   fit_params: dict[str, Any], parallelize: bool | None,
                   fit_time: float) -> dict[str, Any]:
    """``cross_validate`` on the folds of ``cv``, here or on Ray; flat ``cv/...`` metrics."""
    from sklearn.base import is_classifier
    from sklearn.model_selection import check_cv
    from sklearn.model_selection import cross_validate as sk_cross_validate

    folds = list(check_cv(cv, y, classifier=is_classifier(estimator)).split(x, y, groups))
    use_ray, why = cv_on_ray(estimator, n_folds=len(folds), fit_time=fit_time,
                             parallelize=parallelize)
    log.info("SklearnTrainer: %d cv folds on %s (%s)", len(folds), "Ray" if use_ray else
             "this process", why)
    if use_ray:
        # DEFAULT: never captured into an enclosing placement group (a Tune trial's bundle
        # is held by the trial itself: a fold task there would wait forever)
        task = ray.remote(num_cpus=1, scheduling_strategy="DEFAULT")(_one_fold)
        x_ref, y_ref = ray.put(x), ray.put(y)
        parts = ray.get([task.remote(estimator, x_ref, y_ref, f, scoring, fit_params)
                         for f in folds])
        results = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    else:
        results = sk_cross_validate(estimator, x, y, cv=folds, scoring=scoring, params=fit_params)
    metrics: dict[str, Any] = {"cv/parallel": "ray" if use_ray else "local"}
    for key, values in results.items():
        metrics[f"cv/{key}"] = [float(v) for v in values]
        metrics[f"cv/{key}_mean"] = float(np.mean(values))
        metrics[f"cv/{key}_std"] = float(np.std(values))
    return metrics


__all__ = ["RAY_CV_OVERHEAD_S", "cross_validate", "cv_on_ray", "free_cpus", "joblib_backend",
           "own_n_jobs"]
