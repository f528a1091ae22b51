"""Several driver processes on one store: restart, SIGKILL mid-step, concurrent runs.

The drivers connect to the test session's Ray through ``RAY_ADDRESS``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]
ROOT = Path(__file__).resolve().parents[2]

PIPE = '''
import time
from pathlib import Path
import airflowdsl as af

@af.ingest
def src(n: int = 5) -> list:
    return list(range(n))

@af.preprocess
def slow(xs: list, ctl: str = "") -> list:
    if ctl:
        Path(ctl, "started").touch()
        deadline = time.time() + 300
        while Path(ctl, "hold").exists() and time.time() < deadline:
            time.sleep(0.05)
    return [x * x for x in xs]

@af.predict
def summary(xs: list) -> dict:
    return {"sum": float(sum(xs))}

@af.pipeline
def proc(ctl: str = ""):
    return summary(slow(src(), ctl=ctl))
'''

DRIVER = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import ray
import proc_pipe
run = proc_pipe.proc.run(store=sys.argv[2], ctl=sys.argv[3])
print("RESULT " + json.dumps({"status": run.status, "output": run.output, "error": run.error,
      "cached": {n: s.cached for n, s in run.steps.items()}, "ray": ray.is_initialized()}))
'''


@pytest.fixture()
def proj(tmp_path: Path) -> Path:
    (tmp_path / "proc_pipe.py").write_text(PIPE)
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "ctl").mkdir()
    return tmp_path


def _env() -> dict[str, str]:
    import ray

    env = dict(os.environ)
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _start(proj: Path, store: Path, ctl: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(proj / "driver.py"), str(proj), str(store), ctl],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = p.communicate(timeout=600)
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert p.returncode == 0 and lines, err[-3000:]
    return json.loads(lines[-1][7:])


def test_cache_survives_restart_and_cached_run_needs_no_ray(proj: Path) -> None:
    first = _result(_start(proj, proj / "s"))
    assert first["status"] == "succeeded" and first["output"] == {"sum": 30.0}
    assert not any(first["cached"].values()) and first["ray"]
    second = _result(_start(proj, proj / "s"))
    assert second["status"] == "succeeded" and second["output"] == {"sum": 30.0}
    assert all(second["cached"].values())
    assert second["ray"] is False  # fully cached: Ray was never connected


def test_sigkill_mid_step_leaves_a_usable_store(proj: Path) -> None:
    ctl = proj / "ctl"
    (ctl / "hold").touch()
    p = _start(proj, proj / "s", str(ctl))
    deadline = time.time() + 300
    while not (ctl / "started").exists():
        assert p.poll() is None, p.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    (ctl / "hold").unlink()
    after = _result(_start(proj, proj / "s", str(ctl)))
    assert after["status"] == "succeeded" and after["output"] == {"sum": 30.0}
    assert after["cached"]["src"] and not after["cached"]["summary"]


def test_two_processes_on_one_store_at_once(proj: Path) -> None:
    a, b = _start(proj, proj / "s"), _start(proj, proj / "s")
    ra, rb = _result(a), _result(b)
    assert ra["status"] == rb["status"] == "succeeded"
    assert ra["output"] == rb["output"] == {"sum": 30.0}
    third = _result(_start(proj, proj / "s"))
    assert all(third["cached"].values()) and third["output"] == {"sum": 30.0}


FOUR = '''
import os
import airflowdsl as af

def _note(step: str) -> None:
    with open({log!r}, "a") as f:
        f.write(step + "\\n")

@af.ingest
def src() -> list:
    _note("src")
    return [1, 2, 3]

@af.preprocess
def double(xs: list) -> list:
    _note("double")
    return [x * 2 for x in xs]

@af.preprocess
def square(xs: list) -> list:
    _note("square")
    return [x * x for x in xs]

@af.predict
def total(a: list, b: list) -> dict:
    _note("total")
    return {{"t": float(sum(a) + sum(b))}}

@af.pipeline
def four():
    s = src()
    return total(double(s), square(s))
'''

FOUR_DRIVER = '''
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import four_pipe
open(os.path.join(sys.argv[1], "ready-%d" % os.getpid()), "w").close()
while len([f for f in os.listdir(sys.argv[1]) if f.startswith("ready-")]) < 4:
    time.sleep(0.02)  # all four start at once: nothing is cached yet
run = four_pipe.four.run(store=sys.argv[2])
print("RESULT " + json.dumps({"status": run.status, "output": run.output, "error": run.error,
      "reasons": {n: s.reason for n, s in run.steps.items()}}))
'''


def test_four_drivers_on_ray_compute_each_step_once(tmp_path: Path) -> None:
    """Four processes run one pipeline on one store through the shared Ray at once: the
    key leases make each step compute once; the others wait and reuse the result."""
    log = tmp_path / "computed.log"
    (tmp_path / "four_pipe.py").write_text(FOUR.format(log=str(log)))
    (tmp_path / "driver.py").write_text(FOUR_DRIVER)
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path),
                               str(tmp_path / "s")], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [_result(p) for p in procs]
    assert all(r["status"] == "succeeded" for r in results), [r["error"] for r in results]
    assert all(r["output"] == {"t": 26.0} for r in results)
    computed = log.read_text().split()
    assert sorted(computed) == ["double", "square", "src", "total"], computed
