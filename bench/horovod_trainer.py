"""HorovodTrainer vs TorchTrainer (DDP): the same small job on the same actor-group runtime.

    python bench/horovod_trainer.py [--runs 3] [--epochs 4]

The job of ``bench/trainer_overhead.py`` (16-32-1 MLP regression, 20k generated rows,
2 workers at 0.25 CPU each, a report per epoch, rank 0 checkpoints): once with
``hvd.init()`` + ``broadcast_parameters`` + ``hvd.DistributedOptimizer`` (Gloo), once
with ``prepare_model`` (torch DDP over Gloo). Per run: the fit's wall time, the
framework setup inside the loop (``hvd.init`` + broadcasts vs DDP wrapping), and loop
throughput. Runs alternate after one discarded warm-up each; medians are shown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainer_overhead import FEATURES, _epoch, _mlp, make_frame  # noqa: E402


def loop_per_worker(config: dict[str, Any]) -> None:
    import torch

    from airflowdsl.air import session

    start = time.time()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    if config["api"] == "horovod":
        import horovod.torch as hvd

        hvd.init()
        opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters())
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    else:
        from airflowdsl.train.torch import prepare_model

        model = prepare_model(model)  # DDP shares the parameters `opt` already holds
    setup_s = time.time() - start
    shard, rows_done, loop_start = session.get_dataset_shard("train"), 0, time.time()
    for epoch in range(config["epochs"]):
        loss, rows = _epoch(model, opt, shard.iter_torch_batches(
            batch_size=config["batch_size"], dtypes=torch.float32))
        rows_done += rows
        ckpt = None
        if session.get_world_rank() == 0:
            from airflowdsl.train.torch import TorchCheckpoint

            ckpt = TorchCheckpoint.from_state_dict(model.state_dict())
        session.report({"loss": loss, "epoch": epoch, "rows": rows_done, "setup_s": setup_s,
                        "loop_s": time.time() - loop_start}, checkpoint=ckpt)


def fit(api: str, frame: Any, config: dict[str, Any]) -> dict[str, float]:
    import ray.data

    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.horovod import HorovodTrainer
    from airflowdsl.train.torch import TorchTrainer

    cls = HorovodTrainer if api == "horovod" else TorchTrainer
    with tempfile.TemporaryDirectory(prefix=f"bench-{api}-") as storage:
        start = time.time()
        metrics = cls(loop_per_worker, train_loop_config={**config, "api": api},
                      scaling_config=ScalingConfig(num_workers=2,
                                                   resources_per_worker={"CPU": 0.25}),
                      run_config=RunConfig(storage_path=storage),
                      datasets={"train": ray.data.from_pandas(frame)}).fit().metrics
        total = time.time() - start
    return {"total_s": total, "setup_s": metrics["setup_s"], "loop_s": metrics["loop_s"],
            "rows_per_s": metrics["rows"] / metrics["loop_s"], "loss": metrics["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import ray

    if not ray.is_initialized():
        here = os.path.dirname(os.path.abspath(__file__))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": here}})
    frame = make_frame(20_000)
    config = {"epochs": args.epochs, "batch_size": 128}
    apis = ["horovod", "torch_ddp"]
    samples: dict[str, list[dict[str, float]]] = {api: [] for api in apis}
    for i in range(args.runs + 1):  # run 0 warms imports and is dropped
        for api in apis if i % 2 == 0 else reversed(apis):
            sample = fit(api, frame, config)
            print(f"run {i} {api:9s} " + " ".join(f"{k}={v:.3f}" for k, v in sample.items()),
                  flush=True)
            if i:
                samples[api].append(sample)
    print(f"\n{len(FEATURES)} features, 20,000 rows, {args.epochs} epochs, 2 workers, "
          f"medians of {args.runs}\n")
    print("| trainer | total s | framework setup s | loop s | rows/s (loop) | final loss |")
    print("|---|---|---|---|---|---|")
    for api, got in samples.items():
        m = {k: statistics.median(s[k] for s in got) for k in got[0]}
        print(f"| {api} | {m['total_s']:.2f} | {m['setup_s']:.3f} | {m['loop_s']:.2f} "
              f"| {m['rows_per_s']:.0f} | {m['loss']:.4f} |")


if __name__ == "__main__":
    main()
