# Ray AIR documentation code, ported to airflowdsl.
# Source: ray-project/ray doc/source/ray-air/doc_code/lightgbm_trainer.py
#         @ 8884c7feba336634cfc919399a401e11e7514664 (Ray 2.x AIR trainers page).
# Copyright Ray Team. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Imports changed: ray.train.lightgbm -> airflowdsl.train.lightgbm,
#   ray.air.config -> airflowdsl.air.config.
# Sizes: ScalingConfig num_workers 3 -> 2 (a 2-CPU machine).
# Other lines changed: none.
import ray

from airflowdsl.train.lightgbm import LightGBMTrainer
from airflowdsl.air.config import ScalingConfig

train_dataset = ray.data.from_items([{"x": x, "y": x + 1} for x in range(32)])
trainer = LightGBMTrainer(
    label_column="y",
    params={"objective": "regression"},
    scaling_config=ScalingConfig(num_workers=2),
    datasets={"train": train_dataset},
)
result = trainer.fit()
