"""Breast-cancer classification with XGBoostTrainer (Ray AIR's XGBoost example shape).

    python examples/xgboost_trainer.py [--workers 2] [--rounds 50]

scikit-learn's bundled breast_cancer table, one model boosted across 2 workers with
xgboost.collective (each on half of the training rows), ``train-*``/``valid-*`` metrics
every round, a checkpoint every 10 rounds (the last 2 kept), then batch scoring of the
held-out rows with ``BatchPredictor`` + ``XGBoostPredictor``. Starts a local Ray
(``num_cpus=2``) when none is running.
"""

from __future__ import annotations

import argparse
import tempfile

import ray
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from airflowdsl.air import CheckpointConfig, RunConfig, ScalingConfig
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.xgboost import XGBoostPredictor, XGBoostTrainer


def main() -> None:
    parser = argparse.ArgumentParser(description="XGBoostTrainer on breast_cancer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    if not ray.is_initialized():
        ray.init(num_cpus=2)

    table = load_breast_cancer(as_frame=True).frame
    train, valid = train_test_split(table, test_size=0.25, random_state=6, stratify=table["target"])
    trainer = XGBoostTrainer(
        datasets={"train": ray.data.from_pandas(train), "valid": ray.data.from_pandas(valid)},
        label_column="target",
        params={"objective": "binary:logistic", "eval_metric": ["logloss", "error"],
                "max_depth": 4, "eta": 0.3},
        num_boost_round=args.rounds,
        scaling_config=ScalingConfig(num_workers=args.workers),
        run_config=RunConfig(storage_path=tempfile.mkdtemp(prefix="xgboost-example-"),
                             checkpoint_config=CheckpointConfig(checkpoint_frequency=10,
                                                                num_to_keep=2)),
    )
    result = trainer.fit()
    print(result.metrics_dataframe[["training_iteration", "train-logloss", "valid-logloss",
                                    "valid-error"]].tail(3).to_string(index=False))

    scored = BatchPredictor.from_checkpoint(result.checkpoint, XGBoostPredictor).predict(
        ray.data.from_pandas(valid), keep_columns=["target"]).to_pandas()
    # Ray Data hands back pyarrow-backed columns: compare as numpy arrays
    accuracy = ((scored["predictions"].to_numpy() > 0.5) == scored["target"].to_numpy()).mean()
    print(f"held-out accuracy {accuracy:.3f} on {len(scored)} rows; checkpoint {result.checkpoint}")


if __name__ == "__main__":
    main()
