# Ray AIR documentation code, ported to airflowdsl.
# Source: ray-project/ray doc/source/ray-air/examples/xgboost_batch_prediction.py
#         @ 38c4e8f24077ebd9e698b3493007dadb19c8644f (Ray 2.3/2.4 AIR batch prediction).
# Copyright Ray Team. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Imports changed: ray.train.batch_predictor -> airflowdsl.train.batch_predictor,
#   ray.train.xgboost -> airflowdsl.train.xgboost, ray.air.config -> airflowdsl.air.config.
# Data: ray.data.read_csv("s3://anonymous@air-example-data/breast_cancer.csv") -> the same
#   table from scikit-learn's bundled copy (load_breast_cancer(as_frame=True).frame).
# Sizes: num_boost_round 20 -> 5.
# Other lines changed: none.
import ray
from ray.data.preprocessors import StandardScaler
from sklearn.datasets import load_breast_cancer
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.xgboost import XGBoostTrainer, XGBoostPredictor
from airflowdsl.air.config import ScalingConfig

# Split data into train and validation.
dataset = ray.data.from_pandas(load_breast_cancer(as_frame=True).frame)
train_dataset, valid_dataset = dataset.train_test_split(test_size=0.3)
test_dataset = valid_dataset.drop_columns(["target"])

columns_to_scale = ["mean radius", "mean texture"]
preprocessor = StandardScaler(columns=columns_to_scale)

trainer = XGBoostTrainer(
    label_column="target",
    num_boost_round=5,
    scaling_config=ScalingConfig(num_workers=2),
    params={
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "error"],
    },
    datasets={"train": train_dataset},
    preprocessor=preprocessor,
)
result = trainer.fit()

# You can also create a checkpoint from a trained model using
# `XGBoostCheckpoint.from_model`.

# import xgboost as xgb
# from ray.train.xgboost import XGBoostCheckpoint
# model = xgb.Booster()
# model.load_model(...)
# checkpoint = XGBoostCheckpoint.from_model(model, path=".")
checkpoint = result.checkpoint

batch_predictor = BatchPredictor.from_checkpoint(checkpoint, XGBoostPredictor)

predicted_probabilities = batch_predictor.predict(test_dataset)
# Call show on the output probabilities to trigger execution.
predicted_probabilities.show()
