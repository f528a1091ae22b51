"""PPO on CartPole-v1 with RLTrainer (RLlib's new API stack), then greedy actions.

    python examples/rl_trainer.py [--iterations 5] [--env-runners 1] [--target 150]

The algorithm and its learner run in this process; RLlib starts ``--env-runners``
sampling actors (a fraction of a CPU each on a small machine). Training stops after
``--iterations`` or as soon as the mean episode return reaches ``--target``; a checkpoint
is kept every 2 iterations and at the end, and the trained policy then plays a few
episodes greedily through ``RLPredictor``. Starts a local Ray (``num_cpus=2``) when none
is running.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import ray

from airflowdsl.air import CheckpointConfig, RunConfig, ScalingConfig
from airflowdsl.train.rl import RLPredictor, RLTrainer


def play(predictor: RLPredictor, episodes: int = 5, seed: int = 0) -> list[float]:
    """Returns of ``episodes`` greedy CartPole episodes."""
    env = gym.make("CartPole-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action = int(predictor.compute_actions(obs[np.newaxis])[0])
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--env-runners", type=int, default=1)
    parser.add_argument("--target", type=float, default=150.0)
    parser.add_argument("--storage", default=None, help="where checkpoints go")
    args = parser.parse_args()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)

    trainer = RLTrainer(
        algorithm="PPO",
        config={
            "env": "CartPole-v1",
            "framework": "torch",
            "lr": 3e-4,
            "train_batch_size_per_learner": 1000,
            "minibatch_size": 250,
            "num_epochs": 4,
        },
        scaling_config=ScalingConfig(num_workers=args.env_runners),
        run_config=RunConfig(
            name="ppo_cartpole",
            storage_path=args.storage,
            stop={"training_iteration": args.iterations, "episode_return_mean": args.target},
            checkpoint_config=CheckpointConfig(checkpoint_frequency=2, num_to_keep=2),
        ),
    )
    result = trainer.fit()
    cols = ["training_iteration", "episode_return_mean", "episode_len_mean",
            "num_env_steps_sampled_lifetime", "time_total_s"]
    print(result.metrics_dataframe[cols].to_string(index=False))
    print(f"checkpoint: {result.checkpoint}")

    predictor = RLPredictor.from_checkpoint(result.checkpoint)
    returns = play(predictor)
    print(f"greedy returns over {len(returns)} episodes: {returns} (mean {np.mean(returns):.1f})")


if __name__ == "__main__":
    main()
