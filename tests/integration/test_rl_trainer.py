"""RLTrainer on a real local Ray: PPO on CartPole-v1, a few small iterations."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airflowdsl.air import CheckpointConfig, Result, RunConfig, ScalingConfig

pytestmark = pytest.mark.integration

# Not imported here: importing RLlib at collection would switch TensorFlow to graph mode
# for the whole test process (see airflowdsl.train.rl._require_rllib, which undoes it).
if importlib.util.find_spec("ray.rllib") is None:
    pytest.skip("RLlib is not installed", allow_module_level=True)
gym = pytest.importorskip("gymnasium")

SMALL_PPO = {
    "env": "CartPole-v1",
    "framework": "torch",
    "lr": 3e-4,
    "train_batch_size_per_learner": 400,
    "minibatch_size": 100,
    "num_epochs": 2,
}


@pytest.fixture(scope="module")
def ppo(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, str]:
    """3 iterations with 1 env runner; checkpoints every 2 iterations + at the end, 1 kept."""
    from airflowdsl.train.rl import RLTrainer

    storage = str(tmp_path_factory.mktemp("rl"))
    trainer = RLTrainer(
        algorithm="PPO",
        config=SMALL_PPO,
        scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(name="ppo", storage_path=storage, stop={"training_iteration": 3},
                             checkpoint_config=CheckpointConfig(checkpoint_frequency=2,
                                                                num_to_keep=1)),
    )
    return trainer.fit(), storage


def test_reward_is_reported_each_iteration(ppo: tuple[Result, str]) -> None:
    result, _ = ppo
    frame = result.metrics_dataframe
    assert len(frame) == 3
    assert list(frame["training_iteration"]) == [1, 2, 3]
    assert frame["episode_return_mean"].notna().all()
    assert (frame["episode_return_mean"] > 0).all()
    assert (frame["num_env_steps_sampled_lifetime"].diff().dropna() > 0).all()
    assert "env_runners/episode_return_mean" in frame.columns
    assert "episode_len_mean" in result.metrics


def test_checkpoint_restores_a_predictor(ppo: tuple[Result, str]) -> None:
    from airflowdsl.train.rl import RLCheckpoint, RLPredictor

    result, storage = ppo
    assert isinstance(result.checkpoint, RLCheckpoint)
    assert result.checkpoint.path.startswith(storage)
    assert result.checkpoint.get_metadata()["training_iteration"] == 3  # the one at the end
    assert len(result.best_checkpoints) == 1
    # RLlib's Trainable folder is in the trainer's run directory, not in ~/ray_results
    assert len(list((Path(storage) / "ppo" / "rllib").iterdir())) == 1

    env = gym.make("CartPole-v1")
    obs = np.stack([env.reset(seed=i)[0] for i in range(8)])
    predictor = RLPredictor.from_checkpoint(result.checkpoint)
    actions = predictor.compute_actions(obs)
    assert actions.shape == (8,)
    assert all(env.action_space.contains(int(a)) for a in actions)
    assert list(predictor.predict(obs)) == list(actions)  # greedy; an array in, an array out


@pytest.mark.slow
def test_resume_from_checkpoint_continues_training(ppo: tuple[Result, str]) -> None:
    from airflowdsl.train.rl import RLTrainer

    result, storage = ppo
    resumed = RLTrainer(
        algorithm="PPO", config=SMALL_PPO,
        run_config=RunConfig(name="ppo2", storage_path=storage, stop={"training_iteration": 4}),
        resume_from_checkpoint=result.checkpoint,
    ).fit()
    assert len(resumed.metrics_dataframe) == 1  # iteration 4 only: 1-3 were restored
    steps: Any = result.metrics_dataframe["num_env_steps_sampled_lifetime"].iloc[-1]
    assert resumed.metrics["num_env_steps_sampled_lifetime"] > steps


def test_fit_in_a_task_of_a_placement_group_that_does_not_capture(
        ray_session: None, tmp_path: Path) -> None:
    """A pipeline step runs in a slot: a placement group that does not capture its child
    tasks. RLlib's env runners then go outside it (RLlib gave them a bundle index of a
    group they are not in: "If placement group is not set, the value of bundle index must
    be -1")."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ray.remote(num_cpus=0)
    def fit_here(storage: str) -> tuple[int, str | None]:
        from airflowdsl.train.rl import RLTrainer

        result = RLTrainer(
            algorithm="PPO",
            config={"env": "CartPole-v1", "framework": "torch",
                    "train_batch_size_per_learner": 200, "minibatch_size": 100,
                    "num_epochs": 1},
            scaling_config=ScalingConfig(num_workers=1),
            run_config=RunConfig(name="in_slot", storage_path=storage,
                                 stop={"training_iteration": 1})).fit()
        return result.metrics["training_iteration"], ray.util.get_current_placement_group() \
            and ray.util.get_current_placement_group().id.hex()

    slot = placement_group([{"CPU": 0.001}])
    ray.get(slot.ready(), timeout=60)
    try:
        iteration, pg_after = ray.get(fit_here.options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                slot, placement_group_capture_child_tasks=False)).remote(str(tmp_path)),
            timeout=300)
    finally:
        remove_placement_group(slot)
    assert iteration == 1
    assert pg_after == slot.id.hex()  # Ray's own answer is restored after the fit
    assert len(list((tmp_path / "in_slot" / "rllib").iterdir())) == 1


def test_rl_trainer_needs_a_stop_rule_and_a_known_algorithm() -> None:
    from airflowdsl.train.rl import RLTrainer

    with pytest.raises(ValueError, match="unknown RLlib algorithm"):
        RLTrainer(algorithm="NOPE", config=SMALL_PPO)
    with pytest.raises(ValueError, match="stop rule"):
        RLTrainer(algorithm="PPO", config=SMALL_PPO).fit()
