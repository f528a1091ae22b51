"""Nothing waits forever: the stall watchdog on a real Ray, and Ctrl-C on a real CLI run."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import stall_pipelines as sp
from conftest import RESOURCES, ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_stalled_nested_work_fails_the_step_with_a_message(ray_session: None,
                                                            store_dir: Path) -> None:
    import ray

    started = time.monotonic()
    run = sp.starving.run(store=store_dir, pending_timeout=6)
    took = time.monotonic() - started
    assert run.status == "failed" and took < 60, took
    err = run.steps["starve"].error
    assert err.startswith("StalledError")
    for part in ("'starve' holds num_cpus=0", "free", "--pending-timeout"):
        assert part in err, err
    # Ray Data's read tasks it waits for (1 or 2 of them: Ray Data's own choice, which
    # moves with whether the step ran in the step-slot group)
    assert re.search(r"pending [12] x \{1 CPU\}", err), err
    # the stopped step's actor died with it: the CPUs come back
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == 2


def _cli(args: list[str], home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "AIRFLOWDSL_HOME": str(home), "PYTHONPATH": str(RESOURCES)}
    return subprocess.Popen([sys.executable, "-m", "airflowdsl.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.timeout(300)
def test_ctrl_c_cancels_records_and_resumes(tmp_path: Path) -> None:
    target = str(RESOURCES / "stall_pipelines.py") + ":slow_pipe"
    proc = _cli(["run", target], tmp_path)
    deadline = time.monotonic() + 120
    logs = list(tmp_path.glob("runs/*/logs/slow.log"))
    while not (logs and "slow started" in logs[0].read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.5)
        logs = list(tmp_path.glob("runs/*/logs/slow.log"))
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert time.monotonic() - sent < 10, out
    assert "resume with" in out
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        (status,) = db.execute("SELECT status FROM runs").fetchone()
        steps = dict(db.execute("SELECT name, status FROM steps").fetchall())
    assert status == "cancelled" and steps == {"quick": "succeeded", "slow": "cancelled"}
    listing = subprocess.run([sys.executable, "-m", "airflowdsl.cli", "runs"], cwd=ROOT,
                             env={**os.environ, "AIRFLOWDSL_HOME": str(tmp_path)},
                             capture_output=True, text=True, timeout=60)
    assert "cancelled" in listing.stdout
    # the next run resumes from the cache: quick is served, slow starts again
    again = _cli(["run", target], tmp_path)
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("runs/*/logs/slow.log"))) < 2:
        assert again.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    again.send_signal(signal.SIGINT)
    out, _ = again.communicate(timeout=30)
    assert again.returncode == 130
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        rows = db.execute("SELECT s.name, s.cached FROM steps s JOIN runs r ON r.id = s.run_id "
                          "ORDER BY r.started DESC LIMIT 2").fetchall()
    assert dict(rows)["quick"] == 1


@pytest.mark.timeout(120)
def test_a_hung_worker_setup_call_fails_with_its_name(ray_session: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from airflowdsl.errors import TrainingFailedError
    from airflowdsl.train.worker_group import WorkerGroup

    group = WorkerGroup(num_workers=1, resources={"CPU": 0.5})
    try:
        monkeypatch.setenv("AIRFLOWDSL_SETUP_TIMEOUT", "2")
        started = time.monotonic()
        with pytest.raises(TrainingFailedError, match="sleepy_rendezvous on every worker did "
                                                      "not finish within 2 s on worker rank"):
            group.execute(sp.sleepy_rendezvous)
        assert time.monotonic() - started < 10
    finally:
        group.shutdown()
