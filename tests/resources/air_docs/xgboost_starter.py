# Ray AIR documentation code, ported to airflowdsl.
# Source: ray-project/ray doc/source/ray-air/examples/xgboost_starter.py, the Ray 2.2-2.4
#         version ("Getting started" XGBoost tab; stored id 60023560).
# Copyright Ray Team. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Imports changed: ray.air.config -> airflowdsl.air.config, ray.train.xgboost ->
#   airflowdsl.train.xgboost, ray.tune -> airflowdsl.tune, ray.tune.tuner -> airflowdsl.tune,
#   ray.train.batch_predictor -> airflowdsl.train.batch_predictor.
# Data: ray.data.read_csv("s3://anonymous@air-example-data/breast_cancer.csv") -> the same
#   table from scikit-learn's bundled copy (load_breast_cancer(as_frame=True).frame).
# Sizes: num_boost_round 20 -> 5, Tuner num_samples 5 -> 2.
# Other lines changed: none.
# flake8: noqa
# isort: skip_file

# __air_generic_preprocess_start__
import ray
from sklearn.datasets import load_breast_cancer

# Load data.
dataset = ray.data.from_pandas(load_breast_cancer(as_frame=True).frame)

# Split data into train and validation.
train_dataset, valid_dataset = dataset.train_test_split(test_size=0.3)

# Create a test dataset by dropping the target column.
test_dataset = valid_dataset.drop_columns(cols=["target"])
# __air_generic_preprocess_end__

# __air_xgb_preprocess_start__
# Create a preprocessor to scale some columns.
from ray.data.preprocessors import StandardScaler

preprocessor = StandardScaler(columns=["mean radius", "mean texture"])
# __air_xgb_preprocess_end__

# __air_xgb_train_start__
from airflowdsl.air.config import ScalingConfig
from airflowdsl.train.xgboost import XGBoostTrainer

trainer = XGBoostTrainer(
    scaling_config=ScalingConfig(
        # Number of workers to use for data parallelism.
        num_workers=2,
        # Whether to use GPU acceleration.
        use_gpu=False,
    ),
    label_column="target",
    num_boost_round=5,
    params={
        # XGBoost specific params
        "objective": "binary:logistic",
        # "tree_method": "gpu_hist",  # uncomment this to use GPUs.
        "eval_metric": ["logloss", "error"],
    },
    datasets={"train": train_dataset, "valid": valid_dataset},
    preprocessor=preprocessor,
)
result = trainer.fit()
print(result.metrics)
# __air_xgb_train_end__

# __air_xgb_tuner_start__
from airflowdsl import tune

param_space = {"params": {"max_depth": tune.randint(1, 9)}}
metric = "train-logloss"
# __air_xgb_tuner_end__

# __air_tune_generic_end__
from airflowdsl.tune import Tuner, TuneConfig

tuner = Tuner(
    trainer,
    param_space=param_space,
    tune_config=TuneConfig(num_samples=2, metric=metric, mode="min"),
)
result_grid = tuner.fit()
best_result = result_grid.get_best_result()
print("Best result:", best_result)
# __air_tune_generic_end__

# __air_xgb_batchpred_start__
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.xgboost import XGBoostPredictor

# You can also create a checkpoint from a trained model using
# `XGBoostCheckpoint.from_model`.
checkpoint = best_result.checkpoint

batch_predictor = BatchPredictor.from_checkpoint(checkpoint, XGBoostPredictor)

predicted_probabilities = batch_predictor.predict(test_dataset)
predicted_probabilities.show()
# {'predictions': 0.9970690608024597}
# {'predictions': 0.9943051934242249}
# {'predictions': 0.00334902573376894}
# ...
# __air_xgb_batchpred_end__
