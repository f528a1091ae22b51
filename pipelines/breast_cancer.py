"""Breast-cancer classification: the whole AIR workflow on scikit-learn's bundled table.

    ingest -> split (train/valid/test) -> preprocess (fit an AIR StandardScaler on train)
      -> tune (XGBoostTrainer, a small grid; the scaler rides in every checkpoint)
      -> predict (BatchPredictor on the held-out test rows, raw: the checkpoint's scaler
         is applied again) -> evaluate

Run it:      airflowdsl run pipelines/breast_cancer.py -p max_depths=[2,4]
Trials:      airflowdsl show RUN_ID --step tune_xgboost
Draw it:     airflowdsl graph pipelines/breast_cancer.py -o dag.svg
Importing this module starts nothing (no Ray, no data loading).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

import airflowdsl as af

if TYPE_CHECKING:  # a string annotation to the DSL: importing Ray Data stays lazy
    from ray.data.preprocessor import Preprocessor

LABEL = "target"


@af.ingest
def load_data() -> af.Dataset:
    """The 569-row Wisconsin breast-cancer table (30 features + ``target``)."""
    import ray.data
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return ray.data.from_pandas(frame)


@af.preprocess
def split(ds: af.Dataset, test_size: Annotated[float, Field(gt=0, lt=0.5)] = 0.2,
          seed: int = 0) -> tuple[af.Dataset, af.Dataset, af.Dataset]:
    """Shuffled train / validation / held-out test split (deterministic for a seed)."""
    rest, test = ds.train_test_split(test_size=test_size, shuffle=True, seed=seed)
    train, valid = rest.train_test_split(test_size=test_size / (1 - test_size), shuffle=True,
                                         seed=seed)
    return train, valid, test


@af.preprocess
def fit_scaler(train: af.Dataset, label_column: str = LABEL) -> Preprocessor:
    """An AIR preprocessor (``ray.data.preprocessors.StandardScaler``) fitted on train
    only. The trainer stores it in its checkpoints; every predictor applies it again."""
    from ray.data.preprocessors import StandardScaler

    features = [c for c in train.columns() if c != label_column]
    return StandardScaler(columns=features).fit(train)


@af.tune
def tune_xgboost(train: af.Dataset, valid: af.Dataset, scaler: Preprocessor,
                 max_depths: list[int] = [2, 4],  # noqa: B006 - a pipeline parameter
                 etas: list[float] = [0.1, 0.3],  # noqa: B006
                 num_boost_round: Annotated[int, Field(ge=1)] = 30,
                 label_column: str = LABEL) -> af.Checkpoint:
    """XGBoostTrainer over a small grid; the best trial's checkpoint (by validation log
    loss). Each trial is recorded with the step (``airflowdsl show RUN --step``)."""
    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.xgboost import XGBoostTrainer
    from airflowdsl.tune import TuneConfig, Tuner, grid_search

    trainer = XGBoostTrainer(
        datasets={"train": train, "valid": valid}, label_column=label_column,
        params={"objective": "binary:logistic", "eval_metric": ["logloss", "error"]},
        num_boost_round=num_boost_round, preprocessor=scaler,
        scaling_config=ScalingConfig(num_workers=1), run_config=RunConfig(verbose=0))
    grid = Tuner(
        trainer,
        param_space={"params": {"max_depth": grid_search(max_depths), "eta": grid_search(etas)}},
        tune_config=TuneConfig(metric="valid-logloss", mode="min"),
    ).fit()
    if grid.num_errors:
        raise RuntimeError(f"{grid.num_errors} trial(s) failed: {grid.errors[0]}")
    best = grid.get_best_result().checkpoint
    assert best is not None
    return best


@af.predict
def predict(ckpt: af.Checkpoint, test: af.Dataset, label_column: str = LABEL) -> af.Dataset:
    """The held-out rows scored by BatchPredictor (raw features: the checkpoint's scaler
    is applied before the model), with the label kept next to each prediction."""
    from airflowdsl.train.batch_predictor import BatchPredictor
    from airflowdsl.train.xgboost import XGBoostPredictor

    predictor = BatchPredictor.from_checkpoint(ckpt, XGBoostPredictor)
    return predictor.predict(test, keep_columns=[label_column])


@af.predict
def evaluate(scored: af.Dataset, label_column: str = LABEL) -> dict[str, float]:
    """Held-out accuracy, F1 and ROC AUC."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    df = scored.to_pandas()
    y, proba = df[label_column], df["predictions"]
    pred = (proba >= 0.5).astype(int)
    return {"accuracy": float(accuracy_score(y, pred)), "f1": float(f1_score(y, pred)),
            "roc_auc": float(roc_auc_score(y, proba)), "n_test": float(len(df))}


@af.pipeline
def breast_cancer(test_size: Annotated[float, Field(gt=0, lt=0.5)] = 0.2, seed: int = 0,
                  max_depths: list[int] = [2, 4],  # noqa: B006 - a pipeline parameter
                  num_boost_round: Annotated[int, Field(ge=1)] = 30):
    train, valid, test = split(load_data(), test_size=test_size, seed=seed)
    best = tune_xgboost(train, valid, fit_scaler(train), max_depths=max_depths,
                        num_boost_round=num_boost_round)
    return evaluate(predict(best, test))


if __name__ == "__main__":
    run = breast_cancer.run()
    print(run.status, run.output)
