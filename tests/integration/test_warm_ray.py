"""``airflowdsl ray up/down``: runs in new processes connect to the warm head instead of
starting Ray; ``down`` and the idle timeout leave no process behind; opt-out works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from airflowdsl.runtime import spareworkers, warmray

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

PIPE = textwrap.dedent('''
    import os, sys
    import ray
    import airflowdsl as af

    @af.step
    def one() -> int:
        return os.getpid()

    @af.pipeline
    def p():
        return one()

    run = p.run(store=sys.argv[1], force=True)
    assert run.status == "succeeded", run.error
    print(run.output)
    print(ray.get_runtime_context().gcs_address)
''')


def _group(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def _gone(pgid: int, limit: float = 30.0) -> bool:
    deadline = time.monotonic() + limit
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _group(pgid)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRFLOWDSL_RAY_DIR", str(tmp_path / "ray"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("AIRFLOWDSL_RAY", raising=False)
    yield tmp_path
    warmray.down()


def _run(tmp_path: Path, **env: str) -> str:
    return _run_pid(tmp_path, **env)[1]


def _run_pid(tmp_path: Path, **env: str) -> tuple[int, str]:
    """(the pid of the worker that ran the step, the GCS address the run used)"""
    script = tmp_path / "pipe.py"
    script.write_text(PIPE)
    # this process is the run's Ray driver (it asks Ray which GCS it used): not the
    # head's warm driver (``runtime.warmdriver``, tested below)
    env = {"AIRFLOWDSL_WARM_DRIVER": "0", **env}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "store")],
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pid, address = proc.stdout.strip().splitlines()[-2:]
    return int(pid), address


def _spare(head: dict[str, object], at_least: int, limit: float = 60.0) -> set[int]:
    """Pids of the head's unassigned idle workers, once there are ``at_least``."""
    keeper = spareworkers.Keeper(str(head["raylet"]), 1, 60)
    deadline = time.monotonic() + limit
    while len(pids := keeper.unassigned()) < at_least and time.monotonic() < deadline:
        time.sleep(0.5)
    return pids


@pytest.mark.timeout(300)
def test_runs_connect_to_the_warm_head_and_down_stops_everything(state: Path) -> None:
    head = warmray.up(num_cpus=2, idle_timeout=600)
    assert warmray.read_head() == head
    port = head["address"].rsplit(":", 1)[1]
    spare = _spare(head, 1)
    pid, address = _run_pid(state)
    assert address.endswith(f":{port}")
    assert pid in spare  # the run's step ran in a spare worker: no worker start
    spare = _spare(head, 1)  # the supervisor started another one
    assert spare and pid not in spare  # the used worker belonged to that run's job
    pid2, address = _run_pid(state)
    assert address.endswith(f":{port}")  # a second process: the same Ray
    assert pid2 in spare and pid2 != pid
    assert not _run(state, AIRFLOWDSL_RAY="local").endswith(f":{port}")  # opt-out: its own Ray
    assert warmray.down()
    assert warmray.read_head() is None
    assert _gone(head["pgid"]), f"left behind: {_group(head['pgid'])}"
    assert not warmray.down()


def _cli_up(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``airflowdsl ray up`` in a new process with ``home`` as its home folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    return subprocess.run([sys.executable, "-m", "airflowdsl.cli", "ray", "up", *args],
                          env={**env, "HOME": str(home), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_idle_timeout_stops_the_head_started_on_a_machine_without_a_ray_token(
        state: Path) -> None:
    # a home that never ran Ray: no ~/.ray/auth_token, which `ray start` with token
    # authentication refuses to start without (`ray.init()` would have made one)
    home = state / "home"
    home.mkdir()
    proc = _cli_up(home, "--num-cpus", "1", "--idle-timeout", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (home / ".ray" / "auth_token").is_file()
    head = warmray.read_head()
    if head is not None:  # else it was idle long enough already
        assert _gone(head["pgid"], limit=60), f"left behind: {_group(head['pgid'])}"
    assert warmray.read_head() is None


@pytest.mark.timeout(120)
def test_a_head_that_cannot_start_is_reported_at_once_with_the_reason(state: Path) -> None:
    home = state / "not-a-folder"
    home.write_text("")  # Ray cannot make ~/.ray/auth_token under it
    t = time.monotonic()
    proc = _cli_up(home)
    assert proc.returncode != 0
    assert time.monotonic() - t < 60  # not the start limit (90 s): the supervisor said why
    assert "authentication token" in proc.stderr and "head.log" in proc.stderr, proc.stderr
    assert warmray.read_head() is None


@pytest.mark.timeout(300)
def test_a_head_whose_gcs_dies_is_stopped_and_not_used(state: Path) -> None:
    # `ray stop` kills every Ray process, the head's GCS and raylet among them, while
    # ``ray start --block`` (a SIGTERM'd child is a clean exit to it) and the supervisor
    # live on: runs must not connect to it (Ray retries a dead GCS for ~14 min)
    head = warmray.up(num_cpus=1, idle_timeout=600)
    gcs = [pid for pid in _group(head["pgid"])
           if b"gcs_server" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert gcs, "no gcs_server in the head's process group"
    for pid in gcs:
        os.kill(pid, 9)
    # the kill is delivered, not yet done: once the GCS's port refuses, or the supervisor
    # has stopped the head (within ~1 s), a run does not use it and starts its own Ray
    deadline = time.monotonic() + 15
    while warmray.usable_head() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warmray.usable_head() is None
    assert _gone(head["pgid"], limit=30), f"left behind: {_group(head['pgid'])}"
    assert warmray.read_head() is None


DRIVEN = textwrap.dedent('''
    import os, sys, time
    import airflowdsl as af
    import helper

    @af.step
    def one(k: int) -> int:
        print("hello from the step", flush=True)
        return helper.VALUE + k

    @af.step
    def last(x: int, mode: str) -> int:
        if mode == "bad":
            raise ValueError("bad input 42")
        if mode.startswith("slow:"):
            open(mode[5:], "w").close()
            time.sleep(120)
        return x * 10

    @af.pipeline
    def p(k: int = 0, mode: str = "ok"):
        return last(one(k), mode)

    run = p.run(store=sys.argv[1], k=int(sys.argv[2]), mode=sys.argv[3])
    print("status", run.status, "ray imported" if "ray" in sys.modules else "no ray", flush=True)
    print("output", run.output if run.succeeded else run.error, flush=True)
''')


def _children(pid: int) -> list[int]:
    return [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/stat")
            if _ppid(p) == pid]


def _ppid(stat: Path) -> int:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


@pytest.mark.timeout(400)
def test_runs_are_driven_by_the_warm_driver_fresh_code_errors_and_ctrl_c(state: Path) -> None:
    """A run in a new process hands its steps to the head's warm driver (it never imports
    Ray itself): the step's print reaches the run's log, an edited helper module
    runs edited (no stale code in the long-lived template), a failing step fails the run
    with the step named, Ctrl-C cancels the steps and the driver's child leaves; with
    ``AIRFLOWDSL_WARM_DRIVER=0`` the run drives itself."""
    head = warmray.up(num_cpus=2, idle_timeout=600)
    deadline = time.monotonic() + 60  # the template imports Ray (~2 s) after the head
    while not (warmray.read_head() or {}).get("driver") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (warmray.read_head() or {}).get("driver"), "the warm driver did not start"
    (state / "pipe.py").write_text(DRIVEN)
    (state / "helper.py").write_text("VALUE = 1\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "pipe.py", str(state / "store"), *args],
                              cwd=state, env={**env, **extra}, capture_output=True,
                              text=True, timeout=180)

    proc = run("2", "ok")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "status succeeded no ray" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "output 30" in proc.stdout
    logs = list((state / "store" / "runs").glob("*/logs/one.log"))  # written by the step
    assert len(logs) == 1 and "hello from the step" in logs[0].read_text()
    (state / "helper.py").write_text("VALUE = 5\n")
    proc = run("2", "ok")
    assert "status succeeded no ray" in proc.stdout and "output 70" in proc.stdout, \
        proc.stdout + proc.stderr[-2000:]
    proc = run("2", "bad")
    assert "status failed no ray" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "'last'" in proc.stdout and "bad input 42" in proc.stdout
    proc = run("3", "ok", AIRFLOWDSL_WARM_DRIVER="0")
    assert "status succeeded ray imported" in proc.stdout and "output 80" in proc.stdout, \
        proc.stdout + proc.stderr[-2000:]

    template = [pid for pid in _group(head["pgid"])
                if b"airflowdsl.runtime.warmdriver" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(template) == 1, template
    marker = state / "started"
    slow = subprocess.Popen([sys.executable, "pipe.py", str(state / "store"), "4",
                             f"slow:{marker}"], cwd=state, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the slow step never started"
    assert _children(template[0]), "no child of the warm driver runs the steps"
    slow.send_signal(2)
    out, err = slow.communicate(timeout=60)
    assert "status cancelled no ray" in out, out + err[-2000:]
    deadline = time.monotonic() + 30
    while _children(template[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _children(template[0]), "the warm driver's child outlived its run"
    assert warmray.down()
    assert _gone(head["pgid"]), f"left behind: {_group(head['pgid'])}"
