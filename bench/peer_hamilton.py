"""Hamilton as a contender in the peer harness's new-process rows (``peer_workloads``),
when it is installed (``pip install sf-hamilton``; not a dependency of airflowdsl).

The same 50-step chain as Hamilton functions (each named after its step, taking its
upstream by name), run by a driver with Hamilton's cache (``Builder().with_cache``)
in a new process: a fully cached rerun, and a rerun after the last function's constant
is edited (Hamilton's cache keys on each function's source, so one function runs).
The pipeline time is ``execute`` alone (the driver built before it; its build time is
reported beside it), the wall time the whole process.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

HAMILTON_PIPE = '''
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from hamilton import driver

{funcs}

if __name__ == "__main__":
    t1 = time.perf_counter()
    dr = driver.Builder().with_modules(sys.modules[__name__]).with_cache(path=sys.argv[1]).build()
    t2 = time.perf_counter()
    out = dr.execute(["s{last}"])
    t3 = time.perf_counter()
    print(json.dumps({{"pipeline_s": t3 - t2, "build_s": t2 - t1, "last": float(out["s{last}"][0])}}))
'''


def available() -> bool:
    try:
        import hamilton.driver  # noqa: F401
    except ImportError:
        return False
    return True


def write(folder: Path, n_chain: int, edit: float) -> Path:
    funcs = ["def s0() -> np.ndarray:\n    return np.arange(1000, dtype=np.float64)\n"]
    funcs += [f"def s{i}(s{i - 1}: np.ndarray) -> np.ndarray:\n    return s{i - 1} + 1.0\n"
              for i in range(1, n_chain - 1)]
    last = n_chain - 1
    funcs.append(f"def s{last}(s{last - 1}: np.ndarray) -> np.ndarray:\n"
                 f"    return s{last - 1} * 2.0 + {edit}\n")
    path = folder / "hamilton_pipe.py"
    path.write_text(HAMILTON_PIPE.format(funcs="\n\n".join(funcs), last=last))
    return path


def rows(folder: Path, n_chain: int, reps: int,
         new_process: Callable[..., tuple[float, dict[str, Any]]]) -> dict[str, str]:
    """{"cached": "pipeline / wall", "edit": "wall"} for Hamilton, as the rows print them."""
    cache = str(folder / "hamilton_cache")
    new_process(write(folder, n_chain, 0.0), cache)  # cold: fills the cache
    cached = [new_process(write(folder, n_chain, 0.0), cache) for _ in range(reps)]
    edits = [new_process(write(folder, n_chain, float(i + 1)), cache) for i in range(reps)]
    pipe = statistics.median(c[1]["pipeline_s"] for c in cached)
    build = statistics.median(c[1]["build_s"] for c in cached)
    wall = statistics.median(c[0] for c in cached)
    e_wall = statistics.median(e[0] for e in edits)
    return {"cached": f"{pipe:.4f} s / {wall:.2f} s (driver build {build:.4f} s)",
            "edit": f"{e_wall:.2f} s ({', '.join(f'{e[0]:.2f}' for e in edits)})"}
