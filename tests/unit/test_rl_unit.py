"""RLTrainer helpers that need neither Ray nor RLlib: metric flattening, stop rules."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np

from airflowdsl.train.rl import flatten_result, rl_metrics, should_stop


def test_import_needs_no_rllib() -> None:
    code = "import sys, airflowdsl.train.rl; assert 'ray.rllib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_rllib_leaves_tensorflow_eager() -> None:
    """RLlib's import switches an installed-but-not-imported TensorFlow to graph mode for
    the whole process; a Keras checkpoint saved in the driver afterwards failed."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("ray.rllib") is None or importlib.util.find_spec("tensorflow") is None:
        pytest.skip("needs RLlib and TensorFlow")
    code = ("from airflowdsl.train.rl import _require_rllib; _require_rllib(); "
            "import tensorflow as tf; assert tf.executing_eagerly(); "
            "print(float(tf.Variable(2.0).numpy()))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip().endswith("2.0")


def test_flatten_result_keeps_scalars_with_slash_keys() -> None:
    raw = {
        "env_runners": {"episode_return_mean": np.float32(21.5), "episode_len_mean": 21.5,
                        "module_episode_returns_mean": {"default_policy": 21.5}},
        "learners": {"default_policy": {"policy_loss": 0.1, "weights": [1, 2]}},
        "num_env_steps_sampled_lifetime": 400,
        "config": {"lr": 0.1}, "training_iteration": 1, "date": "today", "done": False,
    }
    flat = flatten_result(raw)
    assert flat == {
        "env_runners/episode_return_mean": 21.5,
        "env_runners/episode_len_mean": 21.5,
        "env_runners/module_episode_returns_mean/default_policy": 21.5,
        "learners/default_policy/policy_loss": 0.1,
        "num_env_steps_sampled_lifetime": 400,
    }
    assert type(flat["env_runners/episode_return_mean"]) is float
    metrics = rl_metrics(raw)
    assert metrics["episode_return_mean"] == 21.5
    assert metrics["num_env_steps_sampled_lifetime"] == 400
    assert math.isnan(metrics["episode_return_max"])  # not reported yet: NaN, same columns


def test_stop_rules() -> None:
    metrics = {"training_iteration": 3, "episode_return_mean": 120.0, "nan": math.nan}
    assert should_stop({"training_iteration": 3}, metrics)
    assert not should_stop({"training_iteration": 4, "episode_return_mean": 150}, metrics)
    assert should_stop({"training_iteration": 10, "episode_return_mean": 100}, metrics)
    assert not should_stop({"nan": 0}, metrics)
    assert should_stop(lambda m: m["episode_return_mean"] > 100, metrics)
    assert not should_stop(None, metrics)
