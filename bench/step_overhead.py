"""Per-step overhead: airflowdsl vs plain ``@ray.remote`` tasks vs plain function calls.

A 50-step chain and a 50-way fan-out of trivial steps, run in one process,
modes alternating, medians reported. airflowdsl runs with caching and
persistence off (``compiled.run(persist=False)``) and, separately, as users run it,
with persistence on: a forced rerun (``force=True``: every step runs; an artifact whose
bytes are already committed under its key is not written again) and the first run
into a fresh store (every artifact written); all ratios to plain Ray are printed. A
forced rerun groups the trivial steps into shared Ray tasks (``runtime.fusion``: they
ran before, so the history has their times); ``airflowdsl+1task`` is the same rerun with
``AIRFLOWDSL_FUSE=0``, every step its own Ray task.
Plain Ray tasks are bare ``@ray.remote`` tasks (1 CPU each, so Ray runs 2 at once on 2 CPUs); airflowdsl step tasks hold no CPU and its scheduler starts at
most max(2, CPUs) ready steps at once -- the same concurrency. (Bare zero-CPU
tasks are no fair baseline: Ray starts a worker process per concurrent one, and
the pool's churn made plain Ray's fan-out vary 15x between repetitions.)

    python bench/step_overhead.py [--reps 5] [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import ray

import airflowdsl as af


@af.step
def start() -> int:
    return 0


@af.step
def inc(x: int) -> int:
    return x + 1


def plain_start() -> int:
    return 0


def plain_inc(x: int) -> int:
    return x + 1


remote_start = ray.remote(plain_start)  # bare Ray tasks, the same DAG as the pipelines
remote_inc = ray.remote(plain_inc)


def pipelines(n: int) -> tuple[Any, Any]:
    @af.pipeline
    def chain():
        x = start()
        for _ in range(n - 1):
            x = inc(x)
        return x

    @af.pipeline
    def fanout():
        s = start()
        return tuple(inc(s) for _ in range(n - 1))

    return chain.compile(), fanout.compile()


def modes(n: int, store: str) -> dict[str, dict[str, Callable[[], Any]]]:
    chain, fanout = pipelines(n)
    return {
        "chain": {
            "function": lambda: _chain_fn(n),
            "ray": lambda: ray.get(_chain_ray(n)),
            "airflowdsl": lambda: chain.run(persist=False, store=store).output,
            "airflowdsl+persist": lambda: chain.run(force=True, store=store).output,
            "airflowdsl+1task": lambda: _one_task_per_step(chain, store),
            "airflowdsl+fresh": lambda: chain.run(store=tempfile.mkdtemp(dir=store)).output,
        },
        "fanout": {
            "function": lambda: [plain_inc(s) for s in [plain_start()] for _ in range(n - 1)],
            "ray": lambda: ray.get(_fanout_ray(n)),
            "airflowdsl": lambda: fanout.run(persist=False, store=store).output,
            "airflowdsl+persist": lambda: fanout.run(force=True, store=store).output,
            "airflowdsl+1task": lambda: _one_task_per_step(fanout, store),
            "airflowdsl+fresh": lambda: fanout.run(store=tempfile.mkdtemp(dir=store)).output,
        },
    }


def _one_task_per_step(pipe: Any, store: str) -> Any:
    """A forced rerun with grouping off (``AIRFLOWDSL_FUSE=0``): every step its own task."""
    os.environ["AIRFLOWDSL_FUSE"] = "0"
    try:
        return pipe.run(force=True, store=store).output
    finally:
        os.environ.pop("AIRFLOWDSL_FUSE", None)


def _chain_fn(n: int) -> int:
    x = plain_start()
    for _ in range(n - 1):
        x = plain_inc(x)
    return x


def _chain_ray(n: int) -> Any:
    x: Any = remote_start.remote()
    for _ in range(n - 1):
        x = remote_inc.remote(x)
    return x


def _fanout_ray(n: int) -> list[Any]:
    s = remote_start.remote()
    return [remote_inc.remote(s) for _ in range(n - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = tempfile.mkdtemp(prefix="af-bench-")
    table = modes(args.steps, store)
    for shape, fns in table.items():
        for fn in fns.values():  # warm up workers, imports, function exports
            fn()
        times: dict[str, list[float]] = {m: [] for m in fns}
        for _ in range(args.reps):
            for mode, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[mode].append(time.perf_counter() - t)
        med = {m: statistics.median(v) for m, v in times.items()}
        base = med["function"]
        per = {m: (med[m] - base) / args.steps * 1e3 for m in med}
        print(f"{shape} ({args.steps} steps, {args.reps} reps, medians)")
        for m in fns:
            print(f"  {m:20s} total {med[m] * 1e3:8.1f} ms   per-step overhead {per[m]:6.2f} ms")
        print(f"  airflowdsl / ray per-step overhead: persist off {per['airflowdsl'] / per['ray']:.2f}x,"
              f" default (persist on) {per['airflowdsl+persist'] / per['ray']:.2f}x,"
              f" every step its own task {per['airflowdsl+1task'] / per['ray']:.2f}x,"
              f" first run into a fresh store {per['airflowdsl+fresh'] / per['ray']:.2f}x;"
              f" persistence adds {per['airflowdsl+1task'] - per['airflowdsl']:.2f} ms/step"
              f" ({per['airflowdsl+fresh'] - per['airflowdsl']:.2f} ms writing every artifact)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
