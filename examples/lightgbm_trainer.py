"""Breast-cancer classification with LightGBMTrainer (Ray AIR's LightGBM example shape).

    python examples/lightgbm_trainer.py [--workers 2] [--rounds 50]

One LightGBM model trained across 2 workers through LightGBM's own network
(``machines``/``local_listen_port`` from free ports the workers picked,
``tree_learner="data"``), each on half of the training rows; per-round
``train-*``/``valid-*`` metrics (train metrics combined over both shards), one checkpoint
at the end, then the held-out rows scored with ``BatchPredictor`` + ``LightGBMPredictor``.
Starts a local Ray (``num_cpus=2``) when none is running.
"""

from __future__ import annotations

import argparse
import tempfile

import ray
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from airflowdsl.air import RunConfig, ScalingConfig
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.lightgbm import LightGBMPredictor, LightGBMTrainer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="LightGBMTrainer on breast_cancer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=50)
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    if not ray.is_initialized():
        ray.init(num_cpus=2)
    df = load_breast_cancer(as_frame=True).frame
    train_df, valid_df = train_test_split(df, test_size=0.25, random_state=6, stratify=df["target"])
    valid_ds = ray.data.from_pandas(valid_df)

    result = LightGBMTrainer(
        datasets={"train": ray.data.from_pandas(train_df), "valid": valid_ds},
        label_column="target",
        params={"objective": "binary", "metric": ["binary_logloss", "binary_error"],
                "num_leaves": 15, "learning_rate": 0.1},
        num_boost_round=args.rounds,
        scaling_config=ScalingConfig(num_workers=args.workers),
        run_config=RunConfig(storage_path=tempfile.mkdtemp(prefix="lightgbm-example-")),
    ).fit()
    last = result.metrics
    print(f"round {last['training_iteration']}: train-binary_logloss "
          f"{last['train-binary_logloss']:.4f}, valid-binary_error {last['valid-binary_error']:.4f}")

    predictor = BatchPredictor.from_checkpoint(result.checkpoint, LightGBMPredictor)
    scored = predictor.predict(valid_ds, keep_columns=["target"]).to_pandas()
    hits = int(((scored["predictions"].to_numpy() > 0.5) == scored["target"].to_numpy()).sum())
    print(f"held-out accuracy {hits / len(scored):.3f} ({hits}/{len(scored)}); "
          f"model in {result.checkpoint.path}")
