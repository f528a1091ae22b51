"""BatchPredictor vs a plain in-process loop vs a hand-written Ray Data actor recipe.

    python bench/batch_predict.py                  # 200k rows and 20x that, best of 3
    python bench/batch_predict.py --rows 200000 --scales 1 --runs 5

The job (issue 11): ``--rows`` x 16 float32 features, a tiny torch MLP (16-32-1),
scored from a materialized Ray Dataset on a 2-CPU local Ray. Each contender is timed
from the Dataset to the predictions in this process (a pandas frame / array):

- ``loop``: ``ds.to_pandas()`` then the model on 4096-row tensors, in this process.
- ``recipe``: ``ds.map_batches(ScoringActor, compute=ActorPoolStrategy(size=2), num_cpus=0.5,
  batch_format="numpy")`` (the Ray Data actor recipe), then ``to_pandas()``.
- ``ours``: ``BatchPredictor.from_checkpoint(ckpt, TorchPredictor).predict(ds)`` with
  defaults (``fast_path="auto"``: the in-process path when cheap), then ``to_pandas()``.
- ``ours-pool``: the same with ``fast_path=False`` (always the actor pool).

One warm-up run each, then best of ``--runs``; the contenders alternate within a run, and
with ``--settle S`` each timed call starts after S seconds idle (the same for every
contender), so that one contender's actor pool winding down, or Ray Data's iterator
threads and stats-actor updates after a ``to_pandas()``, do not run inside the next one's
timing on 2 cores (the default, 0, measures them back to back).
The last columns are ours / loop and ours / recipe (rows/s ratios).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np

FEATURES = [f"f{i}" for i in range(16)]


def _model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


class RecipeActor:
    """The hand-written Ray Data recipe: load the model once, score numpy batches."""

    def __init__(self, path: str) -> None:
        import torch

        self.model = torch.load(path, weights_only=False)
        self.model.eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        x = np.stack([batch[c] for c in FEATURES], axis=1)
        with torch.no_grad():
            out = self.model(torch.from_numpy(x)).numpy()[:, 0]
        return {"predictions": out}


def run_loop(ds: Any, model: Any) -> np.ndarray:
    import torch

    frame = ds.to_pandas()
    x = frame[FEATURES].to_numpy(dtype=np.float32)
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), 4096):
            outs.append(model(torch.from_numpy(x[i:i + 4096])).numpy()[:, 0])
    return np.concatenate(outs)


def run_recipe(ds: Any, path: str) -> np.ndarray:
    import ray.data

    out = ds.map_batches(RecipeActor, fn_constructor_args=(path,), batch_format="numpy",
                         batch_size=4096, compute=ray.data.ActorPoolStrategy(size=2),
                         num_cpus=0.5)
    return out.to_pandas()["predictions"].to_numpy()


PATHS: dict[tuple[int, str], set[str]] = {}  # (rows, contender) -> where ours scored


def run_ours(ds: Any, ckpt: Any, *, fast_path: Any, name: str, rows: int) -> np.ndarray:
    from airflowdsl.train.batch_predictor import BatchPredictor
    from airflowdsl.train.torch import TorchPredictor

    predictor = BatchPredictor.from_checkpoint(ckpt, TorchPredictor)
    out = predictor.predict(ds, feature_columns=FEATURES, fast_path=fast_path)
    PATHS.setdefault((rows, name), set()).add(str(predictor.last_path))
    return out.to_pandas()["predictions"].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds of idle before each timed call (every contender alike)")
    args = parser.parse_args()

    import pandas as pd
    import ray
    import torch

    from airflowdsl.train.torch import TorchCheckpoint

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    model = _model()
    model.eval()
    ckpt = TorchCheckpoint.from_model(model)
    path = os.path.join(ckpt.path, "recipe_model.pt")
    torch.save(model, path)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    print(f"{started}, load average {load}")
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Ray {ray.__version__}, torch {torch.__version__}; best of {args.runs} after a warm-up")
    print(f"{'rows':>9} {'contender':>10} {'best s':>8} {'rows/s':>12} {'vs loop':>8} "
          f"{'vs recipe':>9}")
    for scale in args.scales:
        n = args.rows * scale
        rng = np.random.default_rng(0)
        frame = pd.DataFrame(rng.normal(size=(n, 16)).astype(np.float32), columns=FEATURES)
        ds = ray.data.from_pandas(frame).materialize()
        contenders = {
            "loop": lambda ds=ds: run_loop(ds, model),
            "recipe": lambda ds=ds: run_recipe(ds, path),
            "ours": lambda ds=ds, n=n: run_ours(ds, ckpt, fast_path="auto", name="ours", rows=n),
            "ours-pool": lambda ds=ds, n=n: run_ours(ds, ckpt, fast_path=False,
                                                     name="ours-pool", rows=n),
        }
        best: dict[str, float] = {}
        reference = None
        for attempt in range(args.runs + 1):  # attempt 0: the warm-up
            for name, fn in contenders.items():
                time.sleep(args.settle)  # the previous contender's actors/threads wind down
                started = time.perf_counter()
                out = fn()
                took = time.perf_counter() - started
                if reference is None:
                    reference = out
                np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5)  # same, in order
                if attempt:
                    best[name] = min(best.get(name, float("inf")), took)
        for name, took in best.items():
            rate = n / took
            where = "/".join(sorted(PATHS.get((n, name), set())))
            print(f"{n:>9} {name:>10} {took:>8.3f} {rate:>12,.0f} "
                  f"{best['loop'] / took:>8.2f} {best['recipe'] / took:>9.2f}  {where}")
        ours = best["loop"] / best["ours"], best["recipe"] / best["ours"]
        print(f"  targets at {n} rows: ours >= 0.5x loop: {'met' if ours[0] >= 0.5 else 'NOT met'}"
              f" ({ours[0]:.2f}x); ours >= recipe: {'met' if ours[1] >= 1 else 'NOT met'}"
              f" ({ours[1]:.2f}x)")
    with open("/proc/loadavg") as fh:
        print(f"load average at the end {' '.join(fh.read().split()[:3])}")
    ray.shutdown()


if __name__ == "__main__":
    main()
