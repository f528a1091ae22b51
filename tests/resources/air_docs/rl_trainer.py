# Ray AIR documentation code, ported to airflowdsl.
# Source: ray-project/ray doc/source/ray-air/doc_code/rl_trainer.py
#         @ 17c085c31e9c315f2f7670ba300f59af42eb3ae6 (Ray 2.x AIR trainers page).
# Copyright Ray Team. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Imports changed: ray.air.config -> airflowdsl.air.config, ray.train.rl ->
#   airflowdsl.train.rl.
# Sizes: stop training_iteration 5 -> 1.
# Other lines changed (third-party): "framework": "tf" -> "torch" (RLlib 2.60 refuses
#   framework="tf" on its new API stack).
from airflowdsl.air.config import RunConfig, ScalingConfig
from airflowdsl.train.rl import RLTrainer

trainer = RLTrainer(
    run_config=RunConfig(stop={"training_iteration": 1}),
    scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
    algorithm="PPO",
    config={
        "env": "CartPole-v0",
        "framework": "torch",
        "evaluation_num_workers": 1,
        "evaluation_interval": 1,
        "evaluation_config": {"input": "sampler"},
    },
)
result = trainer.fit()
