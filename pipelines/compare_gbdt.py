"""XGBoost vs LightGBM on breast_cancer: one shared ingest + split, two distributed fits.

    load_data -> split -+-> fit_xgboost  (XGBoostTrainer, 2 workers) -+-> compare
                        +-> fit_lightgbm (LightGBMTrainer, 2 workers) -+

Both trainers get the same preprocessed train/valid datasets (``valid`` is their
per-round eval set); ``compare`` scores both checkpoints on ``valid``.

Run it:      airflowdsl run pipelines/compare_gbdt.py -p rounds=50
Draw it:     airflowdsl graph pipelines/compare_gbdt.py -o dag.svg
Importing this module starts nothing (no Ray, no framework import).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

import airflowdsl as af

LABEL = "target"
Rounds = Annotated[int, Field(ge=1)]
Workers = Annotated[int, Field(ge=1)]


@af.ingest
def load_data() -> af.Dataset:
    """The 569-row Wisconsin breast-cancer table (30 features + ``target``)."""
    import ray.data
    from sklearn.datasets import load_breast_cancer

    return ray.data.from_pandas(load_breast_cancer(as_frame=True).frame)


@af.preprocess
def split(ds: af.Dataset, test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25,
          seed: int = 6) -> tuple[af.Dataset, af.Dataset]:
    """Stratified train/valid split (deterministic for a seed); 426 training rows by
    default, an even count, so two workers get equal shards and no row is dropped."""
    import ray.data
    from sklearn.model_selection import train_test_split

    frame = ds.to_pandas()
    train, valid = train_test_split(frame, test_size=test_size, random_state=seed,
                                    stratify=frame[LABEL])
    return (ray.data.from_pandas(train.reset_index(drop=True)),
            ray.data.from_pandas(valid.reset_index(drop=True)))


def _fit(trainer_cls: Any, params: dict[str, Any], train: Any, valid: Any, rounds: int,
         workers: int) -> Any:
    """Each fit gets a fresh run directory: a reused run name would resume that run."""
    from airflowdsl.air import ScalingConfig

    result = trainer_cls(
        datasets={"train": train, "valid": valid}, label_column=LABEL, params=params,
        num_boost_round=rounds, scaling_config=ScalingConfig(num_workers=workers),
    ).fit()
    return result.checkpoint


@af.train
def fit_xgboost(train: af.Dataset, valid: af.Dataset, rounds: Rounds = 50,
                max_depth: Annotated[int, Field(ge=1)] = 4,
                eta: Annotated[float, Field(gt=0)] = 0.3, workers: Workers = 2) -> af.Checkpoint:
    """One XGBoost model trained across ``workers`` with xgboost.collective."""
    from airflowdsl.train.xgboost import XGBoostTrainer

    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "error"],
              "max_depth": max_depth, "eta": eta}
    return _fit(XGBoostTrainer, params, train, valid, rounds, workers)


@af.train
def fit_lightgbm(train: af.Dataset, valid: af.Dataset, rounds: Rounds = 50,
                 num_leaves: Annotated[int, Field(ge=2)] = 15,
                 learning_rate: Annotated[float, Field(gt=0)] = 0.1,
                 workers: Workers = 2) -> af.Checkpoint:
    """One LightGBM model trained across ``workers`` through LightGBM's network."""
    from airflowdsl.train.lightgbm import LightGBMTrainer

    params = {"objective": "binary", "metric": ["binary_logloss", "binary_error"],
              "num_leaves": num_leaves, "learning_rate": learning_rate}
    return _fit(LightGBMTrainer, params, train, valid, rounds, workers)


@af.predict
def compare(xgb: af.Checkpoint, lgbm: af.Checkpoint, valid: af.Dataset) -> dict[str, float]:
    """Accuracy, log loss and ROC AUC of both models on ``valid``; ``lightgbm_minus_xgboost_*``
    says which one won (positive: LightGBM is higher)."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    from airflowdsl.train.lightgbm import LightGBMPredictor
    from airflowdsl.train.xgboost import XGBoostPredictor

    frame = valid.to_pandas()
    y = frame[LABEL].to_numpy()
    out: dict[str, float] = {"n_valid": float(len(frame))}
    for name, predictor in (("xgboost", XGBoostPredictor.from_checkpoint(xgb)),
                            ("lightgbm", LightGBMPredictor.from_checkpoint(lgbm))):
        proba = predictor.predict(frame.drop(columns=[LABEL]))["predictions"].to_numpy()
        out[f"{name}_accuracy"] = float(accuracy_score(y, proba > 0.5))
        out[f"{name}_logloss"] = float(log_loss(y, proba))
        out[f"{name}_roc_auc"] = float(roc_auc_score(y, proba))
    for metric in ("accuracy", "logloss", "roc_auc"):
        out[f"lightgbm_minus_xgboost_{metric}"] = out[f"lightgbm_{metric}"] - out[f"xgboost_{metric}"]
    return out


@af.pipeline
def compare_gbdt(rounds: Rounds = 50, workers: Workers = 2, seed: int = 6):
    train, valid = split(load_data(), seed=seed)
    xgb = fit_xgboost(train, valid, rounds=rounds, workers=workers)
    lgbm = fit_lightgbm(train, valid, rounds=rounds, workers=workers)
    return compare(xgb, lgbm, valid)


if __name__ == "__main__":
    run = compare_gbdt.run()
    print(run.status, run.output)
