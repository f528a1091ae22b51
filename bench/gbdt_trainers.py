"""GBDT trainers: airflowdsl's XGBoost/LightGBMTrainer vs Ray Train 2.60's vs one process.

    python bench/gbdt_trainers.py                      # both frameworks, 3 timed runs each
    python bench/gbdt_trainers.py --frameworks xgboost --runs 5 --rounds 100

The job: breast_cancer (426 training rows, 143 held out; the split the tests use),
binary objective, ``--rounds`` boosting rounds, metrics on train + valid every round,
one checkpoint at the end, 2 workers with 0.25 CPU and 1 thread each for both trainers.

- ``single``: ``xgboost.train`` / ``lightgbm.train`` in this process, on the whole table.
- ``ours``: ``airflowdsl.train.xgboost.XGBoostTrainer`` / ``...lightgbm.LightGBMTrainer``.
- ``raytrain``: ``ray.train.xgboost.XGBoostTrainer`` / ``ray.train.lightgbm.LightGBMTrainer``
  (the Train V2 function API: ``get_dataset_shard`` + ``RayTrainReportCallback``).

Wall time of ``fit()`` (or of the single-process train), including worker start-up. Runs
alternate between the contenders; the table shows medians (the first, cold, run counts
too: it is what a pipeline step pays). Ray is started here with ``num_cpus=2``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

LABEL = "target"
PARAMS = {
    "xgboost": {"objective": "binary:logistic", "eval_metric": ["logloss", "error"], "nthread": 1},
    "lightgbm": {"objective": "binary", "metric": ["binary_logloss", "binary_error"],
                 "num_threads": 1, "verbose": -1},
}


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    df = load_breast_cancer(as_frame=True).frame
    train, valid = train_test_split(df, test_size=0.25, random_state=6, stratify=df[LABEL])
    return train.reset_index(drop=True), valid.reset_index(drop=True)


def accuracy(framework: str, model: Any, valid: pd.DataFrame) -> float:
    x = valid.drop(columns=[LABEL])
    if framework == "xgboost":
        import xgboost

        x = xgboost.DMatrix(x)
    return float(((np.asarray(model.predict(x)) > 0.5) == valid[LABEL].to_numpy()).mean())


# --- contenders: each returns the trained booster ---------------------------------------
def run_single(framework: str, train: pd.DataFrame, valid: pd.DataFrame, rounds: int) -> Any:
    x, y = train.drop(columns=[LABEL]), train[LABEL]
    xv, yv = valid.drop(columns=[LABEL]), valid[LABEL]
    if framework == "xgboost":
        import xgboost

        dtrain, dvalid = xgboost.DMatrix(x, label=y), xgboost.DMatrix(xv, label=yv)
        return xgboost.train(PARAMS[framework], dtrain, rounds, verbose_eval=False,
                             evals=[(dtrain, "train"), (dvalid, "valid")])
    import lightgbm

    dtrain = lightgbm.Dataset(x, label=y)
    dvalid = lightgbm.Dataset(xv, label=yv, reference=dtrain)
    return lightgbm.train(PARAMS[framework], dtrain, rounds, valid_sets=[dtrain, dvalid],
                          valid_names=["train", "valid"])


def run_ours(framework: str, train: pd.DataFrame, valid: pd.DataFrame, rounds: int) -> Any:
    import ray.data

    from airflowdsl.air import RunConfig, ScalingConfig

    if framework == "xgboost":
        from airflowdsl.train.xgboost import XGBoostCheckpoint as Ckpt
        from airflowdsl.train.xgboost import XGBoostTrainer as Trainer
    else:
        from airflowdsl.train.lightgbm import LightGBMCheckpoint as Ckpt  # type: ignore[assignment]
        from airflowdsl.train.lightgbm import LightGBMTrainer as Trainer  # type: ignore[assignment]
    result = Trainer(
        datasets={"train": ray.data.from_pandas(train), "valid": ray.data.from_pandas(valid)},
        label_column=LABEL, params=PARAMS[framework], num_boost_round=rounds,
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.25}),
        run_config=RunConfig(storage_path=tempfile.mkdtemp(prefix="bench-gbdt-ours-")),
    ).fit()
    return Ckpt.from_checkpoint(result.checkpoint).get_model()


def raytrain_loop(config: dict[str, Any]) -> None:
    """Ray Train V2's documented GBDT loop: shards -> pandas -> framework train + callback."""
    import ray.train

    frames_ = [ray.train.get_dataset_shard(n).materialize().to_pandas() for n in ("train", "valid")]
    (x, y), (xv, yv) = [(f.drop(columns=[LABEL]), f[LABEL]) for f in frames_]
    params, rounds = config["params"], config["rounds"]
    if config["framework"] == "xgboost":
        import xgboost
        from ray.train.xgboost import RayTrainReportCallback

        dtrain, dvalid = xgboost.DMatrix(x, label=y), xgboost.DMatrix(xv, label=yv)
        xgboost.train(params, dtrain, rounds, evals=[(dtrain, "train"), (dvalid, "valid")],
                      verbose_eval=False, callbacks=[RayTrainReportCallback()])
        return
    import lightgbm
    from ray.train.lightgbm import RayTrainReportCallback as LgbCallback
    from ray.train.lightgbm import get_network_params

    params = {**params, "tree_learner": "data_parallel", "pre_partition": True,
              **get_network_params()}
    dtrain = lightgbm.Dataset(x, label=y)
    dvalid = lightgbm.Dataset(xv, label=yv, reference=dtrain)
    lightgbm.train(params, dtrain, rounds, valid_sets=[dtrain, dvalid],
                   valid_names=["train", "valid"], callbacks=[LgbCallback()])


def run_raytrain(framework: str, train: pd.DataFrame, valid: pd.DataFrame, rounds: int) -> Any:
    import ray.data
    import ray.train

    if framework == "xgboost":
        import ray.train.xgboost as rt

        trainer_cls: Any = rt.XGBoostTrainer
    else:
        import ray.train.lightgbm as rt  # type: ignore[no-redef]

        trainer_cls = rt.LightGBMTrainer
    result = trainer_cls(
        raytrain_loop,
        train_loop_config={"framework": framework, "params": PARAMS[framework], "rounds": rounds},
        datasets={"train": ray.data.from_pandas(train), "valid": ray.data.from_pandas(valid)},
        scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.25}),
        run_config=ray.train.RunConfig(storage_path=tempfile.mkdtemp(prefix="bench-gbdt-rt-")),
    ).fit()
    return rt.RayTrainReportCallback.get_model(result.checkpoint)


CONTENDERS: dict[str, Callable[..., Any]] = {
    "single": run_single, "ours": run_ours, "raytrain": run_raytrain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frameworks", nargs="+", default=["xgboost", "lightgbm"])
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()

    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    train, valid = frames()
    times: dict[tuple[str, str], list[float]] = {}
    accs: dict[tuple[str, str], float] = {}
    for framework in args.frameworks:
        for run in range(args.runs):
            for name in args.contenders:
                start = time.perf_counter()
                model = CONTENDERS[name](framework, train, valid, args.rounds)
                took = time.perf_counter() - start
                times.setdefault((framework, name), []).append(took)
                accs[(framework, name)] = accuracy(framework, model, valid)
                print(f"  {framework:8s} {name:8s} run {run + 1}: {took:7.2f} s", flush=True)
    print(f"\npython {platform.python_version()}, ray {ray.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, "
          f"{args.rounds} rounds, median of {args.runs}")
    print(f"{'framework':9s} {'contender':9s} {'median s':>9s} {'min s':>7s} {'accuracy':>9s} "
          f"{'ours/raytrain':>14s}")
    for framework in args.frameworks:
        rt = times.get((framework, "raytrain"))
        for name in args.contenders:
            t = times[(framework, name)]
            ratio = f"{statistics.median(t) / statistics.median(rt):.3f}x" if rt and name == "ours" else ""
            print(f"{framework:9s} {name:9s} {statistics.median(t):9.2f} {min(t):7.2f} "
                  f"{accs[(framework, name)]:9.3f} {ratio:>14s}")


if __name__ == "__main__":
    main()
