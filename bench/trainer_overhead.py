"""Trainer overhead: the same small DDP job on airflowdsl's TorchTrainer, Ray Train, plain
torch, and native DDP (``torchrun --nproc_per_node 2``, gloo).

    python bench/trainer_overhead.py                 # both modes, 3 timed runs each
    python bench/trainer_overhead.py --mode short --runs 5
    python bench/trainer_overhead.py --mode long --only airflowdsl torchrun_ddp

The job: a 16-32-1 MLP regression on generated rows, 2 workers (0.25 CPU each, so it
fits 2 CPUs beside Ray Data), every epoch reports metrics and a checkpoint (rank 0).

- ``short``: 20k rows, 2 epochs -- end-to-end time, dominated by start-up.
- ``long``: 20k rows, 10 epochs -- loop throughput (rows/s from the loop's first line to
  its last report, timed inside the loop, so reports count), where the loop dominates.

Runs alternate between the contenders (after one discarded warm-up run each), each
starting on an idle machine (``settle``), and the table shows medians. Ray is started here with ``num_cpus=2`` when not already running.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

FEATURES = [f"x{i}" for i in range(16)]


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["y"] = np.tanh(x @ rng.normal(size=len(FEATURES))).astype(np.float32)
    return frame


def _mlp() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


def _epoch(model: Any, opt: Any, batches: Any) -> tuple[float, int]:
    import torch

    total, rows = 0.0, 0
    for batch in batches:
        x = torch.stack([batch[f] for f in FEATURES], dim=1)
        loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(x)
        rows += len(x)
    return total / max(rows, 1), rows


def loop_per_worker(config: dict[str, Any]) -> None:
    """One loop for both trainers; ``config["api"]`` picks the session API it talks to."""
    import torch

    if config["api"] == "ours":
        from airflowdsl.air import Checkpoint, session
        from airflowdsl.train.torch import prepare_model

        rank, shard, report = session.get_world_rank(), session.get_dataset_shard("train"), session.report
    else:
        import ray.train
        from ray.train import Checkpoint
        from ray.train.torch import prepare_model

        rank = ray.train.get_context().get_world_rank()
        shard, report = ray.train.get_dataset_shard("train"), ray.train.report
    loop_start = time.time()
    model = prepare_model(_mlp())
    model_ready = time.time()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rows_done = 0
    for epoch in range(config["epochs"]):
        batches = shard.iter_torch_batches(batch_size=config["batch_size"], dtypes=torch.float32)
        loss, rows = _epoch(model, opt, batches)
        rows_done += rows
        metrics = {"loss": loss, "epoch": epoch, "rows": rows_done,
                   "loop_start": loop_start, "model_ready": model_ready, "now": time.time()}
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                torch.save(model.state_dict(), os.path.join(tmp, "model.pt"))
                ckpt = Checkpoint.from_directory(tmp)
            report(metrics, checkpoint=ckpt)


def run_ours(frame: pd.DataFrame, config: dict[str, Any], storage: str) -> dict[str, Any]:
    import ray.data

    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.torch import TorchTrainer

    trainer = TorchTrainer(loop_per_worker, train_loop_config={**config, "api": "ours"},
                           scaling_config=ScalingConfig(num_workers=2,
                                                        resources_per_worker={"CPU": 0.25}),
                           run_config=RunConfig(storage_path=storage),
                           datasets={"train": ray.data.from_pandas(frame)})
    return trainer.fit().metrics


def run_ray_train(frame: pd.DataFrame, config: dict[str, Any], storage: str) -> dict[str, Any]:
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(loop_per_worker, train_loop_config={**config, "api": "ray"},
                           scaling_config=ray.train.ScalingConfig(
                               num_workers=2, resources_per_worker={"CPU": 0.25}),
                           run_config=ray.train.RunConfig(storage_path=storage),
                           datasets={"train": ray.data.from_pandas(frame)})
    return dict(trainer.fit().metrics)


def run_plain(frame: pd.DataFrame, config: dict[str, Any], storage: str) -> dict[str, Any]:
    """One process, no Ray: the floor (same model, batches and per-epoch checkpoint).

    One torch thread, like each Ray worker (Ray sets OMP_NUM_THREADS=1 for fractional
    CPUs): on a busy 2-core machine more threads only spin against each other.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _plain_loop(frame, config, storage)
    finally:
        torch.set_num_threads(threads)


def _plain_loop(frame: pd.DataFrame, config: dict[str, Any], storage: str) -> dict[str, Any]:
    import torch

    tensors = {c: torch.from_numpy(frame[c].to_numpy()) for c in [*FEATURES, "y"]}
    loop_start = time.time()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    bs, rows_done, loss = config["batch_size"], 0, 0.0
    for epoch in range(config["epochs"]):
        perm = torch.randperm(len(frame))
        batches = ({c: t[perm[i:i + bs]] for c, t in tensors.items()}
                   for i in range(0, len(frame), bs))
        loss, rows = _epoch(model, opt, batches)
        rows_done += rows
        torch.save(model.state_dict(), os.path.join(storage, f"model_{epoch}.pt"))
    return {"loss": loss, "rows": rows_done, "loop_start": loop_start, "now": time.time(),
            "epoch": config["epochs"] - 1}


def run_torchrun(frame: pd.DataFrame, config: dict[str, Any], storage: str) -> dict[str, Any]:
    """The same loop under native DDP: ``torchrun --nproc_per_node 2 --standalone``, gloo,
    one torch thread per process, each rank a strided half of the rows (as Ray Data's
    split gives each worker half), rank 0 checkpoints every epoch and all ranks meet at a
    barrier (as a report does). Start-up = process spawn + torch import + rendezvous."""
    import json
    import shutil
    import subprocess
    import sys

    np.save(os.path.join(storage, "data.npy"), frame[[*FEATURES, "y"]].to_numpy())
    torchrun = shutil.which("torchrun")
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--nproc_per_node", "2", "--standalone", __file__, "--ddp-worker", storage,
        str(config["epochs"]), str(config["batch_size"])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
    with open(os.path.join(storage, "metrics.json")) as fh:
        return dict(json.load(fh))


def ddp_worker(storage: str, epochs: int, batch_size: int) -> None:
    """One torchrun rank (``--ddp-worker``)."""
    import json

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    data = torch.from_numpy(np.load(os.path.join(storage, "data.npy"))[rank::world].copy())
    tensors = {c: data[:, i].contiguous() for i, c in enumerate([*FEATURES, "y"])}
    loop_start = time.time()
    model = torch.nn.parallel.DistributedDataParallel(_mlp())
    model_ready = time.time()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rows_done, loss, n = 0, 0.0, len(data)
    for epoch in range(epochs):
        perm = torch.randperm(n)
        batches = ({c: t[perm[i:i + batch_size]] for c, t in tensors.items()}
                   for i in range(0, n, batch_size))
        loss, rows = _epoch(model, opt, batches)
        rows_done += rows
        if rank == 0:
            torch.save(model.module.state_dict(), os.path.join(storage, f"model_{epoch}.pt"))
        dist.barrier()
    if rank == 0:
        with open(os.path.join(storage, "metrics.json"), "w") as fh:
            json.dump({"loss": loss, "rows": rows_done, "loop_start": loop_start,
                       "model_ready": model_ready, "now": time.time(), "epoch": epochs - 1}, fh)
    dist.destroy_process_group()


CONTENDERS: dict[str, Callable[[pd.DataFrame, dict[str, Any], str], dict[str, Any]]] = {
    "airflowdsl": run_ours,
    "ray_train": run_ray_train,
    "plain_torch": run_plain,
    "torchrun_ddp": run_torchrun,
}


def settle(limit_s: float = 30.0) -> None:
    """Wait until the machine is idle again (CPU < 25 % over 1 s, at most ``limit_s``):
    a finished fit's actors and controller are torn down asynchronously, and on 2 cores
    that teardown would otherwise land in the next contender's time."""
    import psutil

    deadline = time.time() + limit_s
    while time.time() < deadline and psutil.cpu_percent(interval=1.0) >= 25:
        pass


def measure(name: str, frame: pd.DataFrame, config: dict[str, Any]) -> dict[str, float]:
    settle()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as storage:
        start = time.time()
        metrics = CONTENDERS[name](frame, config, storage)
        total = time.time() - start
    assert metrics["epoch"] == config["epochs"] - 1, metrics
    loop_s = metrics["now"] - metrics["loop_start"]
    ready = metrics.get("model_ready", metrics["loop_start"])
    return {"total_s": total, "startup_s": metrics["loop_start"] - start, "loop_s": loop_s,
            "prepare_model_s": ready - metrics["loop_start"],
            "rows_per_s": metrics["rows"] / loop_s,
            "train_rows_per_s": metrics["rows"] / (metrics["now"] - ready), "loss": metrics["loss"]}


def bench(mode: str, runs: int) -> dict[str, dict[str, float]]:
    rows, epochs = (20_000, 2) if mode == "short" else (20_000, 10)
    frame = make_frame(rows)
    config = {"epochs": epochs, "batch_size": 128}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    for i in range(runs + 1):  # run 0 warms imports and worker pools, and is dropped
        for name in CONTENDERS if i % 2 == 0 else reversed(list(CONTENDERS)):
            sample = measure(name, frame, config)
            print(f"[{mode}] run {i} {name:12s} " + " ".join(f"{k}={v:.3f}" for k, v in sample.items()),
                  flush=True)
            if i:
                samples[name].append(sample)
    return {name: {k: statistics.median(s[k] for s in got) for k in got[0]}
            for name, got in samples.items()}


def table(mode: str, medians: dict[str, dict[str, float]]) -> str:
    ours, ray_train = medians["airflowdsl"], medians.get("ray_train")
    lines = [f"### {mode}", "",
             "| contender | total s | before loop s | loop s | of which prepare_model s "
             "| rows/s (loop) | rows/s (after prepare_model) | final loss |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in medians.items():
        lines.append(f"| {name} | {m['total_s']:.2f} | {m['startup_s']:.2f} | {m['loop_s']:.2f} "
                     f"| {m['prepare_model_s']:.2f} | {m['rows_per_s']:.0f} "
                     f"| {m['train_rows_per_s']:.0f} | {m['loss']:.4f} |")
    lines.append("")
    if ray_train is not None:
        lines += [f"- end-to-end, airflowdsl / Ray Train: **{ours['total_s'] / ray_train['total_s']:.2f}x**",
                  f"- loop throughput, airflowdsl / Ray Train: "
                  f"**{ours['rows_per_s'] / ray_train['rows_per_s']:.2f}x** (after prepare_model: "
                  f"{ours['train_rows_per_s'] / ray_train['train_rows_per_s']:.2f}x)"]
    if (ddp := medians.get("torchrun_ddp")) is not None:
        lines += [f"- loop throughput, airflowdsl / native DDP (torchrun, gloo): "
                  f"**{ours['rows_per_s'] / ddp['rows_per_s']:.2f}x** (after prepare_model: "
                  f"{ours['train_rows_per_s'] / ddp['train_rows_per_s']:.2f}x); start-up before "
                  f"the loop: {ours['startup_s']:.2f} s vs {ddp['startup_s']:.2f} s, end-to-end "
                  f"{ours['total_s']:.2f} s vs {ddp['total_s']:.2f} s"]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["short", "long", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="contenders to run")
    parser.add_argument("--ddp-worker", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(args.ddp_worker[0], int(args.ddp_worker[1]), int(args.ddp_worker[2]))
        return
    for name in set(CONTENDERS) - set(args.only or CONTENDERS):
        CONTENDERS.pop(name)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "0")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    for mode in (["short", "long"] if args.mode == "both" else [args.mode]):
        print(table(mode, bench(mode, args.runs)), flush=True)


if __name__ == "__main__":
    main()
