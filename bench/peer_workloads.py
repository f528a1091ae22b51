"""The peer harness's workloads: plain Ray tasks and airflowdsl side by side (issue 15).

airflowdsl runs as users run it: ``run()`` with caching and persistence on. Arrays of
1,000 floats travel between steps unless said otherwise.

- chain: 50 steps, warm (a forced rerun: every step runs and persists), per step
- fan-out: one start, 50 branches, one join (52 steps), warm, per step
- 100 MB: 5 steps passing a 100 MB float64 array (each adds 1), warm, whole pipeline
- each of those three also as the first run into a fresh store (a new store folder per
  repetition, nothing cached: every step writes), so that a rerun writing nothing new
  (identical bytes already committed under the key: no rewrite) is not all one sees
- cached: the fully cached chain rerun in a new process (``run()`` time and wall)
- edit: edit the chain's last step, rerun in a new process (wall); plain Ray's side is
  the same chain as a script of Ray tasks run in a new process on the same Ray (the
  warm head with ``--warm-ray``), all 50 tasks (it has no cache), run as many times
  after ours

In-process rows alternate plain Ray and airflowdsl after one warm-up each; medians
(of three times as many repetitions for the 100 MB rows, bimodal on this VM). A forced
rerun groups cheap steps into shared Ray tasks (``runtime.fusion``: they ran before,
so their times are in the history); the chain and fan-out are also timed with that off
(``AIRFLOWDSL_FUSE=0``: every step its own Ray task), the per-step cost of our task.
The new-process rows run ``python peer_pipe.py`` (a generated module) with whatever Ray
the default path finds: with ``--warm-ray`` after ``airflowdsl ray up`` (and ``down``
at the end), without it as a new user's first runs would (a Ray start per process).
Hamilton runs the new-process rows too when installed (``bench/peer_hamilton.py``: the
chain with Hamilton's cache; ``pip install sf-hamilton``); Kedro is not a contender here.

    python bench/peer_workloads.py [--reps 5] [--new-process-reps 3] [--warm-ray]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import peer_hamilton

ROOT = Path(__file__).resolve().parent.parent
N_CHAIN, N_FAN, N_BIG, BIG = 50, 50, 5, 100 * 2**20 // 8

PIPE = '''
import json, sys, time
import numpy as np
import airflowdsl as af

@af.step
def start() -> np.ndarray:
    return np.arange(1000, dtype=np.float64)

@af.step
def inc(x: np.ndarray) -> np.ndarray:
    return x + 1.0

@af.step
def last(x: np.ndarray) -> np.ndarray:
    return x * 2.0 + {edit}

@af.step
def join({join_params}) -> float:
    return float(sum(a[0] for a in ({join_args},)))

@af.step
def big_start() -> np.ndarray:
    return np.ones({big}, dtype=np.float64)

@af.pipeline
def chain():
    x = start()
    for _ in range({n_chain} - 2):
        x = inc(x)
    return last(x)

@af.pipeline
def fanout():
    s = start()
    return join(*[inc(s) for _ in range({n_fan})])

@af.pipeline
def big():
    x = big_start()
    for _ in range({n_big} - 1):
        x = inc(x)
    return x

if __name__ == "__main__":
    t = time.perf_counter()
    run = chain.run(store=sys.argv[1])
    took = time.perf_counter() - t
    assert run.status == "succeeded", run.error
    print(json.dumps({{"pipeline_s": took, "ran": sum(not s.cached for s in run.steps.values())}}))
'''

# The edit row's plain-Ray contender: the same chain as Ray tasks in a new process, the
# last step's constant given on the command line (Ray has no cache: it runs all 50).
RAY_PIPE = '''
import json, os, sys
if len(sys.argv) > 2:  # the warm head of ``airflowdsl ray up``: token authentication,
    os.environ["RAY_AUTH_MODE"] = "token"  # which Ray reads when it is imported
import numpy as np
import ray

@ray.remote
def start():
    return np.arange(1000, dtype=np.float64)

@ray.remote
def inc(x):
    return x + 1.0

@ray.remote
def last(x, k):
    return x * 2.0 + k

if __name__ == "__main__":
    ray.init(address=sys.argv[2] if len(sys.argv) > 2 else None, logging_level="ERROR")
    x = start.remote()
    for _ in range({n_chain} - 2):
        x = inc.remote(x)
    print(json.dumps({{"last": float(ray.get(last.remote(x, float(sys.argv[1])))[0])}}))
'''


def write_pipe(folder: Path, edit: float) -> Path:
    params = ", ".join(f"x{i}: np.ndarray" for i in range(N_FAN))
    args = ", ".join(f"x{i}" for i in range(N_FAN))
    path = folder / "peer_pipe.py"
    path.write_text(PIPE.format(edit=edit, join_params=params, join_args=args, big=BIG,
                                n_chain=N_CHAIN, n_fan=N_FAN, n_big=N_BIG))
    return path


def new_process(path: Path, *args: str) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(path), *args], env=env, capture_output=True,
                          text=True, timeout=600)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{path} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def airflowdsl_cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "airflowdsl.cli", *args], check=True, timeout=120)


def new_process_rows(reps: int, warm_ray: bool) -> list[tuple[str, ...]]:
    folder = Path(tempfile.mkdtemp(prefix="af-peer-proc-"))
    store = str(folder / "store")
    ray_pipe = folder / "ray_pipe.py"
    ray_pipe.write_text(RAY_PIPE.format(n_chain=N_CHAIN))
    if warm_ray:
        airflowdsl_cli("ray", "up")
    try:
        head = [] if not warm_ray else [_warm_head_address()]
        path = write_pipe(folder, 0.0)
        new_process(path, store)  # cold: fills the store
        new_process(ray_pipe, "0.0", *head)  # the same for plain Ray: a first run
        cached = [new_process(path, store) for _ in range(reps)]
        assert all(c[1]["ran"] == 0 for c in cached), cached
        edits = []
        for i in range(reps):
            path = write_pipe(folder, float(i + 1))
            edits.append(new_process(path, store))
            assert edits[-1][1]["ran"] == 1, edits[-1]
        # then plain Ray's reruns, one after another as ours ran (alternating would have
        # each side's run lease the spare workers the other's just used up)
        ray_edits = [new_process(ray_pipe, str(float(i + 1)), *head) for i in range(reps)]
    finally:
        if warm_ray:
            airflowdsl_cli("ray", "down")
    ham = peer_hamilton.rows(folder, N_CHAIN, reps, new_process) if peer_hamilton.available() \
        else {"cached": "not installed", "edit": "not installed"}
    c_pipe = statistics.median(c[1]["pipeline_s"] for c in cached)
    c_wall = statistics.median(c[0] for c in cached)
    e_wall = statistics.median(e[0] for e in edits)
    r_wall = statistics.median(e[0] for e in ray_edits)
    return [("fully cached rerun, new process, pipeline / wall", "-",
             f"{c_pipe:.4f} s / {c_wall:.2f} s", ham["cached"]),
            ("edit the last step, rerun in a new process, wall (plain Ray: the whole chain "
             "as a new-process script on the same Ray)",
             f"{r_wall:.2f} s ({', '.join(f'{e[0]:.2f}' for e in ray_edits)})",
             f"{e_wall:.2f} s ({e_wall / r_wall:.2f}x Ray; "
             f"{', '.join(f'{e[0]:.2f}' for e in edits)})", ham["edit"])]


def _warm_head_address() -> str:
    from airflowdsl.runtime import warmray

    head = warmray.read_head()
    assert head is not None and head.get("ready"), "airflowdsl ray up did not leave a head"
    return str(head["address"])


def in_process_rows(reps: int) -> list[tuple[str, ...]]:
    import numpy as np
    import ray

    folder = Path(tempfile.mkdtemp(prefix="af-peer-"))
    spec = importlib.util.spec_from_file_location("peer_pipe", write_pipe(folder, 0.0))
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["peer_pipe"] = mod
    spec.loader.exec_module(mod)
    store = str(folder / "store")

    @ray.remote
    def r_start() -> Any:
        return np.arange(1000, dtype=np.float64)

    @ray.remote
    def r_inc(x: Any) -> Any:
        return x + 1.0

    @ray.remote
    def r_join(*xs: Any) -> float:
        return float(sum(a[0] for a in xs))

    @ray.remote
    def r_big() -> Any:
        return np.ones(BIG, dtype=np.float64)

    def ray_chain() -> Any:
        x = r_start.remote()
        for _ in range(N_CHAIN - 1):
            x = r_inc.remote(x)
        return ray.get(x)

    def ray_fan() -> Any:
        s = r_start.remote()
        return ray.get(r_join.remote(*[r_inc.remote(s) for _ in range(N_FAN)]))

    def ray_big() -> Any:
        x = r_big.remote()
        for _ in range(N_BIG - 1):
            x = r_inc.remote(x)
        return ray.get(x)[0]

    def ours(pipe: Any, fresh: bool = False, grouped: bool = True) -> Any:
        def go() -> Any:
            if not grouped:  # every step its own Ray task (runtime.fusion off)
                os.environ["AIRFLOWDSL_FUSE"] = "0"
            try:
                if fresh:  # the first run into a new store: every step writes its artifact
                    run = pipe.run(store=tempfile.mkdtemp(prefix="fresh-", dir=folder))
                else:
                    run = pipe.run(force=True, store=store)
            finally:
                os.environ.pop("AIRFLOWDSL_FUSE", None)
            assert run.status == "succeeded", run.error
            out = run.output
            return out[0] if hasattr(out, "__len__") else out
        return go

    def clean_fresh() -> None:  # outside the timings: the fresh stores of 5 x 100 MB add up
        for d in folder.glob("fresh-*"):
            shutil.rmtree(d, ignore_errors=True)

    rows = []
    for labels, per, n, pipe, ray_fn, n_reps in [
            (("50-step chain, warm (forced rerun), per step",
              "50-step chain, first run into a fresh store, per step",
              "50-step chain, warm, every step its own Ray task (AIRFLOWDSL_FUSE=0), per step"),
             True, N_CHAIN, mod.chain, ray_chain, reps),
            (("50-way fan-out + join, warm, per step",
              "50-way fan-out + join, first run into a fresh store, per step",
              "50-way fan-out + join, warm, every step its own Ray task (AIRFLOWDSL_FUSE=0), "
              "per step"), True, N_FAN + 2, mod.fanout, ray_fan, reps),
            # bimodal on this VM on both sides (a third of runs ~2x slower: the host's
            # memory behaviour), so three times the repetitions for a stable median
            (("5 steps passing a 100 MB array",
              "5 steps passing a 100 MB array, first run into a fresh store"),
             False, N_BIG, mod.big, ray_big, 3 * reps)]:
        contenders = (ray_fn, ours(pipe), ours(pipe, fresh=True),
                      *((ours(pipe, grouped=False),) if len(labels) > 2 else ()))
        for fn in contenders:  # warm-up: workers, imports, function exports, the store
            fn()
        clean_fresh()
        times: list[list[float]] = [[] for _ in contenders]
        for _ in range(n_reps):
            for i, fn in enumerate(contenders):
                t = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t)
            clean_fresh()
        med = [statistics.median(t) for t in times]
        for k, (row, m) in enumerate(zip(labels, med[1:], strict=True), start=1):
            ratio = m / med[0]
            if per:
                rows.append((row, f"{med[0] / n * 1e3:.2f} ms",
                             f"{m / n * 1e3:.2f} ms ({ratio:.2f}x Ray)"))
            else:
                rows.append((row, f"{med[0]:.2f} s", f"{m:.2f} s ({ratio:.2f}x Ray; "
                             f"fastest {min(times[0]):.2f} s vs "
                             f"{min(times[k]):.2f} s)"))
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new-process-reps", type=int, default=3)
    ap.add_argument("--warm-ray", action="store_true", help="airflowdsl ray up first")
    ap.add_argument("--skip-new-process", action="store_true")
    ap.add_argument("--skip-in-process", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    load = os.getloadavg()[0]
    rows: list[tuple[str, ...]] = []
    if not args.skip_new_process:
        rows += new_process_rows(args.new_process_reps, args.warm_ray)
    if not args.skip_in_process:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        rows = in_process_rows(args.reps) + rows
        ray.shutdown()
    print(f"\nload average {load:.2f} -> {os.getloadavg()[0]:.2f}; medians of {args.reps} "
          f"(in process) / {args.new_process_reps} (new process)")
    print("| workload | plain Ray | airflowdsl | Hamilton (new-process rows) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3] if len(r) > 3 else '-'} |")


if __name__ == "__main__":
    main()
