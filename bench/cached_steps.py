"""In-process cost of a fully cached rerun, per step (no Ray is started for it).

A 50-step chain and a 50-way fan-out of trivial steps are run once to fill a store
(this starts Ray), then ``run()`` again N times in the same process with nothing
changed: every step is a cache hit. Reported: median ms per step of the cached runs.
Hamilton's documented per-node overhead for comparison: 0.33 ms (issue text).

    python bench/cached_steps.py [--reps 20] [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from step_overhead import pipelines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = tempfile.mkdtemp(prefix="af-cached-")
    shapes = dict(zip(("chain", "fanout"), pipelines(args.steps), strict=True))
    for compiled in shapes.values():
        compiled.run(store=store)  # fill the cache
    ray.shutdown()  # the cached runs below must not need it
    print(f"{args.steps} steps, {args.reps} cached runs each, medians (Hamilton: 0.33 ms/step)")
    for shape, compiled in shapes.items():
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            run = compiled.run(store=store)
            times.append(time.perf_counter() - t)
            assert all(s.cached for s in run.steps.values()) and not ray.is_initialized()
        per = statistics.median(times) / args.steps * 1e3
        t = time.perf_counter()
        _ = run.output  # loading the outputs is separate from the run
        load = (time.perf_counter() - t) * 1e3
        print(f"  {shape:7s} run() {statistics.median(times) * 1e3:7.2f} ms = {per:.3f} ms/step"
              f"   (+ reading run.output: {load:.1f} ms)")


if __name__ == "__main__":
    main()
