"""Tiny real pipelines for the UI tests: a training step with reports and checkpoints,
an evaluate step with metrics, and a step that fails when asked to (``-p fail=true``)."""

from __future__ import annotations

import airflowdsl as af


@af.ingest
def make_data(n: int = 64) -> dict[str, list[float]]:
    """A deterministic toy data set (JSON)."""
    xs = [i / n for i in range(n)]
    return {"x": xs, "y": [1.0 if x > 0.5 else 0.0 for x in xs]}


@af.preprocess
def featurize(data: dict[str, list[float]], scale: float = 2.0) -> dict[str, list[float]]:
    print(f"featurize: {len(data['x'])} rows, scale {scale}")
    return {"x": [v * scale for v in data["x"]], "y": data["y"]}


def _loop(config: dict) -> None:
    import tempfile

    from airflowdsl.air import Checkpoint, session

    for epoch in range(1, config["epochs"] + 1):
        loss = 1.0 / epoch
        ckpt = None
        if epoch % 2 == 0:
            d = tempfile.mkdtemp()
            with open(f"{d}/weights.txt", "w") as f:
                f.write(str(epoch))
            ckpt = Checkpoint.from_directory(d)
        session.report({"train-loss": loss, "valid-loss": loss * 1.2,
                        "accuracy": 1 - loss / 2}, checkpoint=ckpt)


@af.train
def fit(data: dict[str, list[float]], epochs: int = 6) -> af.Checkpoint:
    from airflowdsl.air import ScalingConfig
    from airflowdsl.train.trainer import DataParallelTrainer

    print(f"fit: {epochs} epochs on {len(data['x'])} rows")
    trainer = DataParallelTrainer(_loop, train_loop_config={"epochs": epochs},
                                  scaling_config=ScalingConfig(num_workers=0))
    return trainer.fit().checkpoint


@af.predict
def evaluate(ckpt: af.Checkpoint, data: dict[str, list[float]], fail: bool = False
             ) -> dict[str, float]:
    print("evaluate: scoring")
    if fail:
        raise ValueError("evaluation blew up on purpose")
    return {"accuracy": 0.9375, "rows": float(len(data["x"]))}


@af.pipeline
def ui_demo(epochs: int = 6, scale: float = 2.0, fail: bool = False):
    data = featurize(make_data(), scale=scale)
    return evaluate(fit(data, epochs=epochs), data, fail=fail)


def _objective(config: dict) -> None:
    from airflowdsl.air import session

    for step in range(2):
        session.report({"score": -((config["x"] - 2) ** 2) + step, "loss": abs(config["x"] - 2)})


@af.tune
def search(data: dict[str, list[float]], num_samples: int = 4) -> dict[str, float]:
    """Four trials of x in 0..3: best at x == 2."""
    from airflowdsl.tune import TuneConfig, Tuner, grid_search

    grid = Tuner(_objective, param_space={"x": grid_search(list(range(num_samples)))},
                 tune_config=TuneConfig(metric="score", mode="max")).fit()
    return {"best_x": float(grid.get_best_result().config["x"])}


@af.pipeline
def ui_tune(num_samples: int = 4):
    return search(make_data(), num_samples=num_samples)


@af.step
def nap(data: dict[str, list[float]], seconds: float = 3.0) -> int:
    """Takes a while, so that a page can watch the run."""
    import time

    time.sleep(seconds)
    return len(data["x"])


@af.pipeline
def ui_slow(seconds: float = 3.0):
    return nap(make_data(), seconds=seconds)
