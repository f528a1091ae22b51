"""Compile time of generated pipelines: 100 / 1,000 / 10,000 steps, chain and fan-out.

    python bench/compile_scaling.py [--sizes 100 1000 10000] [--repeat 3]

chain:   start -> inc -> inc_2 -> ... (one edge per step, typed int -> int)
fan-out: one Dataset source feeding N independent steps, each with a constant
         parameter that pydantic validates (``k=i``).
Prints the best of ``--repeat`` runs per size and the time per step.
"""

from __future__ import annotations

import argparse
import platform
import time

import airflowdsl as af


@af.step
def start() -> int: ...


@af.step
def inc(x: int) -> int: ...


@af.ingest
def source() -> af.Dataset: ...


@af.preprocess
def leaf(ds: af.Dataset, k: int = 0) -> af.Dataset: ...


def chain_pipeline(n: int) -> af.Pipeline:
    @af.pipeline
    def chain():
        x = start()
        for _ in range(n - 1):
            x = inc(x)
        return x

    return chain


def fanout_pipeline(n: int) -> af.Pipeline:
    @af.pipeline
    def fanout():
        ds = source()
        for i in range(n - 1):
            leaf(ds, k=i)

    return fanout


def best_of(pipeline: af.Pipeline, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        pipeline.compile()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, best of {args.repeat}")
    print(f"{'shape':<8} {'steps':>7} {'compile s':>10} {'us/step':>8}")
    for shape, make in (("chain", chain_pipeline), ("fan-out", fanout_pipeline)):
        for n in args.sizes:
            secs = best_of(make(n), args.repeat)
            print(f"{shape:<8} {n:>7} {secs:>10.3f} {secs / n * 1e6:>8.1f}")


if __name__ == "__main__":
    main()
