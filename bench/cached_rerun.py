"""Shipped pipeline, whole process: cold run vs fully cached rerun.

Each measurement is a fresh ``airflowdsl run pipelines/breast_cancer.py``
process (interpreter start, imports, and for the cold run a local Ray
start). Cold runs use an empty store; cached reruns reuse the store of the
last cold run.

    python bench/cached_rerun.py [--cold 2] [--cached 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CMD = [sys.executable, "-c", "from airflowdsl.cli import main; main()", "run",
       str(ROOT / "pipelines" / "breast_cancer.py")]


def timed(store: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    t = time.perf_counter()
    proc = subprocess.run([*CMD, "--store", store], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", type=int, default=2)
    ap.add_argument("--cached", type=int, default=5)
    args = ap.parse_args()
    cold, cached = [], []
    store = ""
    for _ in range(args.cold):
        if store:
            shutil.rmtree(store, ignore_errors=True)
        store = tempfile.mkdtemp(prefix="af-cold-")
        cold.append(timed(store))
        cached.append(timed(store))  # alternate: cold, cached, cold, cached...
    cached += [timed(store) for _ in range(max(0, args.cached - args.cold))]
    shutil.rmtree(store, ignore_errors=True)
    c, h = statistics.median(cold), statistics.median(cached)
    print(f"cold run   median {c:7.2f} s  ({', '.join(f'{x:.1f}' for x in cold)})")
    print(f"cached run median {h:7.2f} s  ({', '.join(f'{x:.2f}' for x in cached)})")
    print(f"cached / cold = {h / c * 100:.1f}%  (targets: < 5% and < 3 s)")
    imp = subprocess.run([sys.executable, "-X", "importtime", "-c", "import airflowdsl"],
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stderr.splitlines()
    total = next((ln for ln in reversed(imp) if ln.rstrip().endswith("| airflowdsl")), "")
    if total:
        print(f"of which `import airflowdsl`: {int(total.split('|')[1]) / 1e6:.2f} s")


if __name__ == "__main__":
    main()
