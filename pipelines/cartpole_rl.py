"""CartPole with RLTrainer (PPO, RLlib's new API stack), then the policy played greedily.

    train_ppo (the learner in the step's process, env-runner actors sample)
      -> rollout (RLPredictor from the checkpoint plays CartPole-v1 episodes; the mean
         episode reward next to a random policy's on the same seeds)

Run it:    airflowdsl run pipelines/cartpole_rl.py -p iterations=10
Importing this module starts nothing (no Ray, no RLlib).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

import airflowdsl as af

ENV = "CartPole-v1"


@af.train
def train_ppo(iterations: Annotated[int, Field(ge=1)] = 6,
              target_reward: Annotated[float, Field(gt=0)] = 150.0,
              env_runners: Annotated[int, Field(ge=0)] = 1,
              lr: Annotated[float, Field(gt=0)] = 3e-4) -> af.Checkpoint:
    """PPO until ``iterations`` or a mean episode reward of ``target_reward``; the final
    checkpoint (the algorithm state: RLModule weights, optimizer, connectors)."""
    from airflowdsl.air import CheckpointConfig, RunConfig, ScalingConfig
    from airflowdsl.train.rl import RLTrainer

    result = RLTrainer(
        algorithm="PPO",
        config={"env": ENV, "framework": "torch", "lr": lr,
                "train_batch_size_per_learner": 1000, "minibatch_size": 250, "num_epochs": 4},
        scaling_config=ScalingConfig(num_workers=env_runners),
        run_config=RunConfig(
            name="cartpole_ppo", verbose=0,
            stop={"training_iteration": iterations, "episode_reward_mean": target_reward},
            checkpoint_config=CheckpointConfig(checkpoint_frequency=0, checkpoint_at_end=True)),
    ).fit()
    assert result.checkpoint is not None
    return result.checkpoint


@af.predict
def rollout(ckpt: af.Checkpoint, episodes: Annotated[int, Field(ge=1)] = 10,
            seed: int = 0) -> dict[str, float]:
    """The trained policy (greedy actions) and a random policy, each over ``episodes``
    episodes on the same seeds: mean, min and max episode reward."""
    import gymnasium as gym
    import numpy as np

    from airflowdsl.train.rl import RLPredictor

    predictor = RLPredictor.from_checkpoint(ckpt)
    env = gym.make(ENV)
    env.action_space.seed(seed)

    def play(policy: str) -> list[float]:
        rewards = []
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                action = (int(predictor.compute_actions(obs[np.newaxis])[0]) if policy == "ppo"
                          else int(env.action_space.sample()))
                obs, reward, terminated, truncated, _ = env.step(action)
                total, done = total + float(reward), terminated or truncated
            rewards.append(total)
        return rewards

    trained, random_policy = play("ppo"), play("random")
    return {"mean_episode_reward": float(np.mean(trained)),
            "min_episode_reward": float(np.min(trained)),
            "max_episode_reward": float(np.max(trained)),
            "random_policy_mean_reward": float(np.mean(random_policy)),
            "episodes": float(episodes)}


@af.pipeline
def cartpole_rl(iterations: Annotated[int, Field(ge=1)] = 6,
                target_reward: Annotated[float, Field(gt=0)] = 150.0,
                episodes: Annotated[int, Field(ge=1)] = 10):
    return rollout(train_ppo(iterations=iterations, target_reward=target_reward),
                   episodes=episodes)


if __name__ == "__main__":
    run = cartpole_rl.run()
    print(run.status, run.output)
