# Ray AIR documentation code, ported to airflowdsl.
# Source: ray-project/ray doc/source/ray-air/doc_code/sklearn_trainer.py
#         @ 25635129e79555a2840ef14fb41d1ac724576996 (Ray 2.x AIR trainers page).
# Copyright Ray Team. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Imports changed: ray.train.sklearn -> airflowdsl.train.sklearn; the file reaches
#   ScalingConfig as ray.air.config.ScalingConfig through `import ray`, so
#   `import airflowdsl.air.config` is added and that expression reads
#   airflowdsl.air.config.ScalingConfig.
# Sizes: trainer_resources {"CPU": 4} -> {"CPU": 2} (a 2-CPU machine).
# Other lines changed: `sklearn_estimator=RandomForestRegressor` ->
#   `estimator=RandomForestRegressor()`: a slip in Ray's own doc (copied from the
#   SklearnTrainer docstring); Ray's SklearnTrainer takes `estimator=`, an instance, and
#   raised TypeError on this line too.
import ray
import airflowdsl.air.config

from airflowdsl.train.sklearn import SklearnTrainer
from sklearn.ensemble import RandomForestRegressor

train_dataset = ray.data.from_items([{"x": x, "y": x + 1} for x in range(32)])
trainer = SklearnTrainer(
    estimator=RandomForestRegressor(),
    label_column="y",
    scaling_config=airflowdsl.air.config.ScalingConfig(trainer_resources={"CPU": 2}),
    datasets={"train": train_dataset},
)
result = trainer.fit()
