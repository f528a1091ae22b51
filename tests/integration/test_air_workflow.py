"""The AIR workflow on a real local Ray: a preprocessor fitted by the trainer, stored in
the checkpoint and applied by Predictor/BatchPredictor; search spaces inside config objects
of a Tuner's param_space; the trials table a Tuner records."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflowdsl.air import Checkpoint, RunConfig, ScalingConfig
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.xgboost import XGBoostPredictor, XGBoostTrainer
from airflowdsl.tune import TuneConfig, Tuner, grid_search, trial_rows

pytestmark = pytest.mark.integration

FEATURES = ["a", "b"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(100.0, 10.0, n), rng.normal(-5.0, 2.0, n)
    return pd.DataFrame({"a": a, "b": b, "y": ((a - 100) / 10 + (b + 5) / 2 > 0).astype(int)})


def test_trainer_fits_stores_and_predictors_apply_the_preprocessor(ray_session: None,
                                                                   tmp_path: Path) -> None:
    import ray.data
    import xgboost
    from ray.data.preprocessors import StandardScaler

    train_df, valid_df = _frame(400, 0), _frame(100, 1)
    scaler = StandardScaler(columns=FEATURES)
    trainer = XGBoostTrainer(
        datasets={"train": ray.data.from_pandas(train_df), "valid": ray.data.from_pandas(valid_df)},
        label_column="y", params={"objective": "binary:logistic", "max_depth": 2},
        num_boost_round=5, scaling_config=ScalingConfig(num_workers=2),
        preprocessor=scaler,
        run_config=RunConfig(name="pp", storage_path=str(tmp_path), verbose=0))
    result = trainer.fit()
    assert result.metrics["valid-logloss"] < 0.5
    stored = result.checkpoint.get_preprocessor()
    assert stored.stats_["mean(a)"] == pytest.approx(train_df["a"].mean())  # fitted on train only
    booster = result.checkpoint and XGBoostPredictor.from_checkpoint(result.checkpoint).model
    # the model was trained on scaled features: its own predictions on scaled valid rows
    scaled = valid_df.assign(a=(valid_df["a"] - train_df["a"].mean()) / train_df["a"].std(ddof=0),
                             b=(valid_df["b"] - train_df["b"].mean()) / train_df["b"].std(ddof=0))
    expected = booster.predict(xgboost.DMatrix(scaled[FEATURES]))
    predictor = XGBoostPredictor.from_checkpoint(Checkpoint(result.checkpoint.path))
    np.testing.assert_allclose(predictor.predict(valid_df)["predictions"], expected, rtol=1e-5)
    batch = BatchPredictor.from_checkpoint(result.checkpoint, XGBoostPredictor)
    out = batch.predict(ray.data.from_pandas(valid_df), keep_columns=["y"]).to_pandas()
    np.testing.assert_allclose(out["predictions"], expected, rtol=1e-5)  # row order kept
    assert list(out["y"]) == list(valid_df["y"])


def test_tuner_resolves_search_spaces_in_configs_and_records_trials(ray_session: None,
                                                                    tmp_path: Path) -> None:
    import ray.data
    from ray.data.preprocessors import StandardScaler

    trainer = XGBoostTrainer(
        datasets={"train": ray.data.from_pandas(_frame(300, 2)),
                  "valid": ray.data.from_pandas(_frame(100, 3))},
        label_column="y", params={"objective": "binary:logistic"}, num_boost_round=3,
        preprocessor=StandardScaler(columns=FEATURES),
        run_config=RunConfig(name="tuned", storage_path=str(tmp_path), verbose=0))
    grid = Tuner(
        trainer,
        param_space={"scaling_config": ScalingConfig(num_workers=grid_search([1, 2])),
                     "params": {"max_depth": grid_search([1, 3])}},
        tune_config=TuneConfig(metric="valid-logloss", mode="min"),
    ).fit()
    assert len(grid) == 4 and grid.num_errors == 0, grid.errors  # no hang: a CPU stays free
    workers = sorted(r.config["scaling_config"]["num_workers"] for r in grid)
    assert workers == [1, 1, 2, 2]
    best = grid.get_best_result()
    assert best.checkpoint.get_preprocessor() is not None  # trials store the fitted one
    rows = trial_rows(grid, metric="valid-logloss", mode="min")
    assert [r["best"] for r in rows].count(True) == 1
    top = next(r for r in rows if r["best"])
    assert top["metrics"]["valid-logloss"] == pytest.approx(best.metrics["valid-logloss"])
    assert all(r["status"] == "TERMINATED" and r["checkpoint"] for r in rows)
    bad = ScalingConfig(num_workers=grid_search([-1]))
    failed = Tuner(trainer, param_space={"scaling_config": bad},
                   run_config=RunConfig(name="bad", storage_path=str(tmp_path), verbose=0)).fit()
    assert failed.num_errors == 1 and "greater than or equal to 0" in str(failed.errors[0])


#: DeprecationWarnings Ray Data's own ``DataContext()`` constructor emits in every new
#: process (it sets each field, deprecated ones included): not from how we call Ray.
_RAY_CONSTRUCTOR = ("use_push_based_shuffle", "use_polars", "use_arrow_tensor_v2")


def test_trials_fit_their_own_preprocessor_quietly_and_leave_home_clean(
        ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A preprocessor grid (each trial fits its own, beside 2 fractional workers: Ray Data's
    aggregation must not be captured by the trial's placement group); no deprecation from
    how we call Ray Data / Tune; nothing under ~/ray_results (default storage: ./.airflowdsl)."""
    import logging
    import warnings

    import ray.data
    from ray.data.preprocessors import MinMaxScaler, StandardScaler

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("AIRFLOWDSL_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    logged: list[str] = []

    class Deprecations(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "deprecat" in record.getMessage().lower():
                logged.append(record.getMessage())

    handler = Deprecations()
    logging.getLogger("ray").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            grid = Tuner(
                XGBoostTrainer(
                    datasets={"train": ray.data.from_pandas(_frame(200, 4)),
                              "valid": ray.data.from_pandas(_frame(60, 5))},
                    label_column="y", params={"objective": "binary:logistic"},
                    num_boost_round=2, scaling_config=ScalingConfig(num_workers=2),
                    run_config=RunConfig(verbose=0)),
                param_space={"preprocessor": grid_search([StandardScaler(columns=FEATURES),
                                                          MinMaxScaler(columns=FEATURES)])},
                tune_config=TuneConfig(metric="valid-logloss", mode="min"),
            ).fit()
    finally:
        logging.getLogger("ray").removeHandler(handler)
    assert len(grid) == 2 and grid.num_errors == 0, grid.errors
    assert sorted(type(r.checkpoint.get_preprocessor()).__name__ for r in grid) == [
        "MinMaxScaler", "StandardScaler"]  # each trial fitted and stored its own
    ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught
            if issubclass(w.category, DeprecationWarning)
            and ("airflowdsl" in w.filename or f"{os.sep}ray{os.sep}" in w.filename)
            and not any(name in str(w.message) for name in _RAY_CONSTRUCTOR)]
    assert not ours and not logged, (ours, logged)
    assert not list(home.glob("ray_results*")) and not (home / "ray_results").exists()
    assert (tmp_path / ".airflowdsl" / "train").is_dir()  # RunConfig's default storage
