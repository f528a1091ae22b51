"""Pipelines for the resource matrix (tests/integration/test_resource_matrix.py).

Every kind of nested Ray work a step can start, on a 2-CPU cluster: Ray Data reads with
``to_pandas`` from steps holding 0, 0.5, 1 or 2 CPUs, a 2-worker trainer, a Tuner with 2
concurrent 1-worker trials, BatchPredictor, and two of them in parallel branches.
"""

from __future__ import annotations

from typing import Any

import airflowdsl as af

ROWS = 2_000


def _read_and_count() -> dict[str, float]:
    import ray.data

    frame = ray.data.range(ROWS, override_num_blocks=4).map_batches(
        lambda b: {"id": b["id"] * 2}).to_pandas()
    return {"rows": float(len(frame)), "total": float(frame["id"].sum())}


def read_step(num_cpus: float) -> af.Step[[], dict[str, float]]:
    """A step holding ``num_cpus`` that runs a Ray Data read + map + ``to_pandas``."""
    return af.step(name=f"read_{str(num_cpus).replace('.', '_')}", num_cpus=num_cpus)(
        _read_and_count)


def _loop(config: dict[str, Any]) -> None:
    from airflowdsl.air import session

    rows = 0
    for epoch in range(2):
        for batch in session.get_dataset_shard("train").iter_batches(batch_size=256):
            rows += len(batch["x"])
        session.report({"epoch": epoch, "rows": rows})


def _trainer(num_workers: int, data: Any) -> Any:
    from airflowdsl.air import ScalingConfig
    from airflowdsl.train.trainer import DataParallelTrainer

    return DataParallelTrainer(_loop, scaling_config=ScalingConfig(num_workers=num_workers),
                               datasets={"train": data})


@af.ingest
def make_data() -> af.Dataset:
    import ray.data

    return ray.data.range(ROWS).map(lambda r: {"x": float(r["id"]), "y": float(r["id"] % 2)})


@af.train
def train_two_workers(data: af.Dataset) -> dict[str, float]:
    result = _trainer(2, data).fit()
    return {"rows_rank0": float(result.metrics["rows"])}


@af.tune
def tune_two_trials(data: af.Dataset) -> dict[str, float]:
    from airflowdsl.tune import TuneConfig, Tuner, grid_search

    grid = Tuner(_trainer(1, data), param_space={"train_loop_config": {"lr": grid_search([1, 2])}},
                 tune_config=TuneConfig(metric="rows", mode="max", max_concurrent_trials=2)).fit()
    return {"trials": float(len(grid)), "errors": float(grid.num_errors)}


@af.predict
def batch_predict(data: af.Dataset) -> dict[str, float]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from airflowdsl.train.batch_predictor import BatchPredictor
    from airflowdsl.train.sklearn import SklearnCheckpoint, SklearnPredictor

    frame = data.to_pandas()
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    ckpt = SklearnCheckpoint.from_estimator(model)
    out = BatchPredictor.from_checkpoint(ckpt, SklearnPredictor).predict(
        data, feature_columns=["x"]).to_pandas()
    return {"rows": float(len(out)), "finite": float(np.isfinite(out.iloc[:, 0]).all())}


read_0 = read_step(0)
read_half = read_step(0.5)
read_1 = read_step(1)
read_2 = read_step(2)


@af.pipeline
def reads():
    return read_0(), read_half(), read_1()


@af.pipeline
def too_big():
    return read_0(), read_2()


@af.pipeline
def training():
    data = make_data()
    return train_two_workers(data), tune_two_trials(data), batch_predict(data)


@af.pipeline
def parallel_branches():
    """A 2-worker trainer and a 1-CPU Ray Data reader at once, beside a Tuner."""
    data = make_data()
    return train_two_workers(data), read_1(), tune_two_trials(data)
