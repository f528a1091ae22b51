# Ray AIR documentation code, ported to airflowdsl.
# Source: ray-project/ray doc/source/ray-air/doc_code/checkpoint_usage.py
#         @ 00f9c25e20004f7dde8e0aed58d82c1c28621d56 (Ray 2.1 AIR "Checkpoints").
# Copyright Ray Team. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Imports changed: ray.train.tensorflow -> airflowdsl.train.tensorflow, ray.air ->
#   airflowdsl.air, ray.train.xgboost -> airflowdsl.train.xgboost,
#   ray.train.batch_predictor -> airflowdsl.train.batch_predictor,
#   ray.air.checkpoint -> airflowdsl.air.checkpoint.
# Data: ray.data.read_csv("s3://air-example-data/breast_cancer.csv") -> the same table from
#   scikit-learn's bundled copy (load_breast_cancer(as_frame=True).frame).
# Left out: the __online_inference__ section (Ray Serve: not part of airflowdsl).
# Other lines changed: none.
# __checkpoint_quick_start__
from airflowdsl.train.tensorflow import to_air_checkpoint
import tensorflow as tf

# This can be a trained model.
def build_model() -> tf.keras.Model:
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(1,)),
            tf.keras.layers.Dense(1),
        ]
    )
    return model


model = build_model()

checkpoint = to_air_checkpoint(model)
# __checkpoint_quick_end__


# __use_trainer_checkpoint_start__
import ray
from sklearn.datasets import load_breast_cancer
from airflowdsl.air import train_test_split
from airflowdsl.train.xgboost import XGBoostTrainer


dataset = ray.data.from_pandas(load_breast_cancer(as_frame=True).frame)
# Split data into train and validation.
train_dataset, valid_dataset = train_test_split(dataset, test_size=0.3)

trainer = XGBoostTrainer(
    scaling_config={"num_workers": 2},
    label_column="target",
    params={
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "error"],
    },
    datasets={"train": train_dataset},
    num_boost_round=5,
)

result = trainer.fit()
checkpoint = result.checkpoint
# __use_trainer_checkpoint_end__

# __batch_pred_start__
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.xgboost import XGBoostPredictor

# Create a test dataset by dropping the target column.
test_dataset = valid_dataset.map_batches(
    lambda df: df.drop("target", axis=1), batch_format="pandas"
)

batch_predictor = BatchPredictor.from_checkpoint(checkpoint, XGBoostPredictor)

# Bulk batch prediction.
batch_predictor.predict(test_dataset)
# __batch_pred_end__

# __basic_checkpoint_start__
from airflowdsl.air.checkpoint import Checkpoint

# Create checkpoint data dict
checkpoint_data = {"data": 123}

# Create checkpoint object from data
checkpoint = Checkpoint.from_dict(checkpoint_data)

# Save checkpoint to a directory on the file system.
path = checkpoint.to_directory()

# This path can then be passed around,
# # e.g. to a different function or a different script.
# You can also use `checkpoint.to_uri/from_uri` to
# read from/write to cloud storage

# In another function or script, recover Checkpoint object from path
checkpoint = Checkpoint.from_directory(path)

# Convert into dictionary again
recovered_data = checkpoint.to_dict()

# It is guaranteed that the original data has been recovered
assert recovered_data == checkpoint_data
# __basic_checkpoint_end__
