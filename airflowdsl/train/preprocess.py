"""AIR preprocessors on our trainers: fit on ``datasets["train"]``, apply to every dataset,
store in every checkpoint, apply again in every Predictor built from that checkpoint.

A trainer's ``preprocessor=`` is any ``ray.data.preprocessors`` object (a ``Chain``
included) or anything with the same ``fit(ds)`` / ``transform(ds)`` /
``transform_batch(df)`` methods. :func:`prepare` runs in the process that calls
``fit()`` (the step task, the Tune trial), before the worker group is placed: the
transformed datasets are lazy and the fit controller materializes them first ("data
first, then reservations", docs/runtime.md). A Tuner whose ``param_space`` leaves the
preprocessor alone prepares once, before any trial, and hands the trials an
:class:`Applied` preprocessor (already fitted and applied: only stored in checkpoints).
"""

from __future__ import annotations

from typing import Any

from airflowdsl.air.search import is_search_space


class Applied:
    """A preprocessor already fitted and applied to the trainer's datasets (by a Tuner,
    once for all trials): the fit only stores it in its checkpoints."""

    def __init__(self, preprocessor: Any) -> None:
        self.preprocessor = preprocessor

    def __repr__(self) -> str:
        return f"Applied({self.preprocessor!r})"


def check(preprocessor: Any, *, owner: str) -> None:
    """Fail at construction for something that is not a preprocessor (a search space is
    allowed: a Tuner resolves it before the trial's trainer is built)."""
    if preprocessor is None or isinstance(preprocessor, Applied) or is_search_space(preprocessor):
        return
    missing = [m for m in ("fit", "transform", "transform_batch")
               if not callable(getattr(preprocessor, m, None))]
    if missing:
        raise TypeError(f"{owner}: preprocessor must be a ray.data.preprocessors Preprocessor "
                        f"(or a Chain); {type(preprocessor).__name__} has no "
                        f"{', '.join(missing)}")


def needs_fit(preprocessor: Any) -> bool:
    """AIR's rule: fit when not fitted yet (or only partly, for a Chain)."""
    status = getattr(preprocessor, "fit_status", None)
    if not callable(status):
        return True
    return getattr(status(), "name", str(status())) in ("NOT_FITTED", "PARTIALLY_FITTED")


def prepare(preprocessor: Any, datasets: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``(fitted preprocessor, datasets transformed)``; an :class:`Applied` one or None
    leaves the datasets as they are. Fits on ``datasets["train"]`` only when needed."""
    if preprocessor is None:
        return None, datasets
    if isinstance(preprocessor, Applied):
        return preprocessor.preprocessor, datasets
    if needs_fit(preprocessor):
        if "train" not in datasets:
            raise ValueError("the preprocessor is not fitted and there is no datasets['train'] "
                             "to fit it on; pass a fitted preprocessor or a train dataset")
        preprocessor = fit_outside_trial_group(preprocessor, datasets["train"])
    return preprocessor, {name: preprocessor.transform(ds) for name, ds in datasets.items()}


def fit_outside_trial_group(preprocessor: Any, train: Any) -> Any:
    """``preprocessor.fit(train)``; returns the fitted preprocessor.

    In a Tune trial (an actor whose placement group captures its child tasks) the fit's
    aggregation tasks (1 CPU each, Ray Data sets no scheduling strategy for them) would be
    captured by the trial's group and cannot fit bundles of fractional workers
    (``Cannot schedule _shuffle_map_task with the placement group``). There the fit runs
    in a task outside the group, on the CPU the Tuner keeps free for trials that
    preprocess, and a fitted copy comes back (its statistics are plain values; the
    transform is a lazy map, scheduled outside the group by Ray Data itself)."""
    if not _in_capturing_group():
        return _fit(preprocessor, train)
    import ray

    task = ray.remote(num_cpus=0, scheduling_strategy="DEFAULT", max_retries=0)(_fit)
    return ray.get(task.remote(preprocessor, train))


def _fit(preprocessor: Any, train: Any) -> Any:
    fitted = preprocessor.fit(train)
    return preprocessor if fitted is None else fitted


def _in_capturing_group() -> bool:
    import sys

    if "ray" not in sys.modules:
        return False
    import ray

    if not ray.is_initialized():
        return False
    ctx = ray.get_runtime_context()
    return bool(ctx.should_capture_child_tasks_in_placement_group
                and ray.util.get_current_placement_group() is not None)


def transform_frame(preprocessor: Any, frame: Any) -> Any:
    """One pandas batch through a fitted preprocessor (what Predictors do)."""
    import pandas as pd

    out = preprocessor.transform_batch(frame)
    if isinstance(out, dict):  # a numpy-format preprocessor
        out = pd.DataFrame({k: list(v) if getattr(v, "ndim", 1) > 1 else v
                            for k, v in out.items()})
    return out


__all__ = ["Applied", "check", "fit_outside_trial_group", "needs_fit", "prepare",
           "transform_frame"]
