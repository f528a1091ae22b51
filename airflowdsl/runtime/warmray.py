"""A warm local Ray head that runs connect to instead of starting Ray each time.

``airflowdsl ray up`` starts a *supervisor* process (its own session) that runs
``ray start --head --block`` as its child, with a temp dir of its own (so a plain
``ray.init()`` elsewhere on the machine never finds it: Ray looks for
``<temp dir>/ray_current_cluster`` under its default temp dir only), and writes
``head.json`` under the state folder (``$AIRFLOWDSL_RAY_DIR``, else
``~/.airflowdsl/ray``). A run (``RayCluster.connect``) connects to it unless
``AIRFLOWDSL_RAY=local`` or ``$RAY_ADDRESS`` says otherwise, and registers itself under
``clients/<pid>`` while connected. The supervisor stops the head when no client is alive
and none has connected for ``idle_timeout`` seconds, on SIGTERM (``airflowdsl ray
down``), or when the head exits: it terminates ``ray start --block`` (which stops the
head's processes), kills what is left of its process group, and removes ``head.json``.

Ray binds a worker process to the first job that leases it, and every run in a new
process is a new job: without help each such run waits for a new worker (~1 s). The
supervisor keeps a few *unassigned* idle workers that the next run's job leases at
once, with numpy and the step task's modules already imported
(``runtime.spareworkers``; ``AIRFLOWDSL_RAY_SPARE_WORKERS=0`` turns it off).

Those workers import airflowdsl's own modules (and numpy, pyarrow) when they start, so
the head records which code it started with (``code_id``): a run whose installed copy
differs (an upgrade, an edit of an editable install) does not use the head -- its steps
could run in a worker holding the old code -- but starts its own Ray and says why
(``usable_head``); ``airflowdsl ray down && airflowdsl ray up`` starts a current head.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflowdsl.fileio import atomic_write_bytes
from airflowdsl.runtime import spareworkers

#: Default idle timeout of a warm head (seconds without a connected run).
IDLE_TIMEOUT_S = 900.0

#: How long ``up`` waits for the head to accept connections, ``down`` for it to stop.
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
#: How long the supervisor waits for Ray's command that makes its authentication token.
TOKEN_TIMEOUT_S = 60.0
#: The runs' driver template (``runtime.warmdriver``) is restarted when it died, at most
#: this often.
DRIVER_RESTART_S = 10.0
#: The template's socket, in the head's session folder.
DRIVER_SOCKET = "driver.sock"


def driver_enabled() -> bool:
    """Runs may hand their steps to the warm driver (``AIRFLOWDSL_WARM_DRIVER=0``: no)."""
    return os.environ.get("AIRFLOWDSL_WARM_DRIVER", "").strip().lower() not in ("0", "off", "no")


def state_dir() -> Path:
    return Path(os.environ.get("AIRFLOWDSL_RAY_DIR") or Path.home() / ".airflowdsl" / "ray")


#: Libraries the head's spare workers import when they start (``spareworkers.preload``)
#: whose installed copy is part of ``code_id``.
PRELOADED = ("numpy", "pyarrow")


def code_id(root: Path | None = None) -> str:
    """Which code a spare worker would hold: a hash of the name, size and modification
    time of every ``.py`` file of the airflowdsl package under ``root`` (default: this
    package), and of the ``__init__.py`` of each library in ``PRELOADED`` (found, not
    imported). ~2 ms."""
    import hashlib
    import importlib.util

    base = root or Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=12)
    files = []
    for dirpath, dirnames, filenames in sorted(os.walk(base)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        files += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    if root is None:
        for lib in PRELOADED:
            spec = importlib.util.find_spec(lib)
            if spec is not None and spec.origin:
                files.append(spec.origin)
    for path in files:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def other_code(head: dict[str, Any]) -> str:
    """Why runs do not use ``head`` when it was started with other code than ``code_id``
    finds installed now (with the command that restarts it); "" when the code is the same."""
    if head.get("code") == code_id():
        return ""
    return (f"airflowdsl: the warm Ray head at {head.get('address')} was started with other "
            "airflowdsl (or numpy, pyarrow) code than is installed now (upgraded or edited "
            "since), so runs do not use it; restart it: "
            "`airflowdsl ray down && airflowdsl ray up`")


def unusable(head: dict[str, Any]) -> str:
    """Why runs do not use ``head`` ("" when they do): other code (``other_code``), or its
    GCS or raylet not answering -- connecting would wait out Ray's own retries (~14 min
    for a dead GCS)."""
    if why := other_code(head):
        return why
    if not _answers(head):
        return (f"airflowdsl: the warm Ray head at {head.get('address')} does not answer "
                "(stopped by `ray stop`?), so runs do not use it; restart it: "
                "`airflowdsl ray down && airflowdsl ray up`")
    return ""


_TOLD = [False]


def usable_head() -> dict[str, Any] | None:
    """The running warm head when it is ready, answers, and runs the code installed here;
    else None (a head with other code or one whose GCS or raylet does not answer says
    why, once per process, on stderr; the run starts its own Ray)."""
    head = read_head()
    if head is None or not head.get("ready"):
        return None
    if why := unusable(head):
        if not _TOLD[0]:
            _TOLD[0] = True
            print(f"{why} (this run starts its own Ray)", file=sys.stderr, flush=True)
        return None
    return head


def enabled() -> bool:
    """Runs may use a warm head (``AIRFLOWDSL_RAY=local`` opts out)."""
    return os.environ.get("AIRFLOWDSL_RAY", "").lower() not in ("local", "off", "0", "no")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_head() -> dict[str, Any] | None:
    """The running warm head's record (address, supervisor pid, ...), or None."""
    try:
        head = json.loads((state_dir() / "head.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(head, dict) or not alive(int(head.get("pid", 0) or 0)):
        return None
    return head


def register_client() -> None:
    """Mark this process as a client of the warm head (until it exits)."""
    clients = state_dir() / "clients"
    clients.mkdir(parents=True, exist_ok=True)
    mine = clients / str(os.getpid())
    mine.touch()

    def leave() -> None:
        try:
            mine.unlink()
            (state_dir() / "last_used").touch()
        except OSError:
            pass

    import atexit

    atexit.register(leave)


def use_head(head: dict[str, Any]) -> None:
    """Prepare this process to connect to ``head`` (token authentication: Ray reads
    ``RAY_AUTH_MODE`` into its config, refreshed here in case Ray was imported already)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._raylet import Config  # type: ignore[attr-defined]

        Config.initialize("")
    except (ImportError, AttributeError):  # pragma: no cover - other Ray versions
        pass
    register_client()


def up(*, num_cpus: int | None = None, idle_timeout: float = IDLE_TIMEOUT_S) -> dict[str, Any]:
    """Start a warm head (or return the running one); wait until it accepts connections."""
    if (head := read_head()) is not None:
        return head
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    (d / "head.json").unlink(missing_ok=True)
    failed = d / "start_failed"
    failed.unlink(missing_ok=True)
    log = open(d / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = [sys.executable, "-m", "airflowdsl.runtime.warmray", "--detach", "--idle-timeout",
           str(idle_timeout)] + (["--num-cpus", str(num_cpus)] if num_cpus else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, env={**os.environ, "AIRFLOWDSL_RAY_DIR": str(d)})
    log.close()
    logs = f"(logs: {d / 'head.log'}, {d / 'supervisor.log'})"
    deadline = time.monotonic() + START_TIMEOUT_S + TOKEN_TIMEOUT_S
    seen = False  # the supervisor's head.json was there
    while time.monotonic() < deadline:
        head = read_head()
        if head is not None and head.get("ready"):
            return head
        if failed.exists():  # the supervisor gave up and said why
            raise RuntimeError(f"the warm Ray head did not start: "
                               f"{failed.read_text(errors='replace')} {logs}")
        if proc.poll() not in (None, 0) or (seen and head is None):  # 0: it detached
            raise RuntimeError(f"the warm Ray head's supervisor exited before the head "
                               f"was ready {logs}")
        seen = seen or head is not None
        time.sleep(0.1)
    if (head := read_head()) is not None:
        _terminate(int(head["pid"]), int(head["pgid"]))
    raise RuntimeError(f"the warm Ray head did not accept connections within "
                       f"{START_TIMEOUT_S + TOKEN_TIMEOUT_S:.0f} s {logs}")


def down() -> bool:
    """Stop the warm head; False when none was running."""
    head = read_head()
    if head is None:
        return False
    _terminate(int(head["pid"]), int(head["pgid"]))
    return True


def _terminate(pid: int, pgid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        try:
            os.killpg(pgid, signal.SIGKILL)  # the supervisor's process group
        except ProcessLookupError:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _answers(head: dict[str, Any]) -> bool:
    """The head's GCS and raylet accept connections (a local connect: ~0.03 ms here)."""
    return all(_accepts(int(str(head.get(k, ":0")).rsplit(":", 1)[1]))
               for k in ("address", "raylet"))


def _idle_since(started: float) -> float | None:
    """When the head last had a client (None: a client is connected now)."""
    d = state_dir()
    last = started
    for f in (d / "clients").glob("*") if (d / "clients").exists() else ():
        if f.name.isdigit() and alive(int(f.name)):
            return None
        f.unlink(missing_ok=True)
    try:
        last = max(last, (d / "last_used").stat().st_mtime)
    except OSError:
        pass
    return last


def _started(log: Path) -> bool:
    """``ray start --block`` has started every head process (it says so, then blocks)."""
    try:
        return b"block forever" in log.read_bytes()
    except OSError:
        return False


def _ensure_token(env: dict[str, str]) -> str:
    """Make Ray's authentication token (``~/.ray/auth_token``) when there is none:
    ``ray start`` with token authentication refuses to start without one (``ray.init()``
    makes it; a machine that never ran one has none). "" when there is one now, else why
    not. Ray's own command; its output, the token, is not kept."""
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "get-auth-token", "--generate"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, timeout=TOKEN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"`ray get-auth-token --generate` did not finish within {TOKEN_TIMEOUT_S:.0f} s"
    if proc.returncode:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        return ("could not make Ray's authentication token (`ray get-auth-token --generate`"
                f" exited with status {proc.returncode}): {' / '.join(lines[-3:])}")
    return ""


def _start_driver(sock: str, d: Path) -> subprocess.Popen[bytes] | None:
    """Start the template of the runs' Ray drivers (``runtime.warmdriver``), with the
    environment ``up`` was called with (its ``RAY_*`` variables must match a run's);
    None when it is turned off (``AIRFLOWDSL_WARM_DRIVER=0``) or does not start."""
    if not driver_enabled():
        return None
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    try:
        with open(d / "driver.log", "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "airflowdsl.runtime.warmdriver", sock],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    except OSError as exc:
        print(f"the warm driver did not start: {exc!r}", flush=True)
        return None


def _start_failed(d: Path, why: str) -> None:
    """Tell ``up`` (waiting for the head) why the head did not start."""
    atomic_write_bytes(d / "start_failed", why.encode())


def _tail(log: Path, lines: int = 3) -> str:
    try:
        return " / ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def supervise(num_cpus: int | None, idle_timeout: float) -> None:
    """The supervisor's body (``python -m airflowdsl.runtime.warmray``)."""
    d = state_dir()
    port, raylet_port = _free_port(), _free_port()
    temp = f"/tmp/afray-{os.getuid()}-{os.getpid()}"
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
           f"--port={port}", f"--node-manager-port={raylet_port}", "--include-dashboard=false",
           "--disable-usage-stats", f"--temp-dir={temp}"] + \
        ([f"--num-cpus={num_cpus}"] if num_cpus else [])
    # Token authentication (Ray's default for a local head; the token is ~/.ray/auth_token,
    # made by ``_ensure_token`` when missing): runs connect with ``RAY_AUTH_MODE=token``
    # (``use_head``).
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_AUTH_MODE": "token"}
    keeper = spareworkers.Keeper(f"127.0.0.1:{raylet_port}",
                                 spareworkers.spare_workers(num_cpus), idle_timeout)
    env.update(keeper.worker_env(env))
    head_log = d / "head.log"
    if why := _ensure_token(env):
        _start_failed(d, why)
        return
    with open(head_log, "wb") as out:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))
    started = time.time()
    head = {"pid": os.getpid(), "pgid": os.getpgid(0), "address": f"127.0.0.1:{port}",
            "raylet": f"127.0.0.1:{raylet_port}", "temp_dir": temp,
            "started": started, "idle_timeout": idle_timeout, "num_cpus": num_cpus,
            "ready": False, "code": code_id()}

    def publish() -> None:
        atomic_write_bytes(d / "head.json", json.dumps(head).encode())

    publish()
    deadline = time.monotonic() + START_TIMEOUT_S
    driver: subprocess.Popen[bytes] | None = None  # runtime.warmdriver's template
    sock = os.path.join(temp, DRIVER_SOCKET)
    driver_started = 0.0
    misses = 0  # checks in a row that found the head's GCS or raylet not answering
    try:
        while not stop[0] and child.poll() is None:
            if not head["ready"]:
                if _accepts(port) and _started(head_log):  # GCS up and the raylet too
                    head["ready"] = True
                    driver, driver_started = _start_driver(sock, d), time.monotonic()
                    publish()
                elif time.monotonic() > deadline:
                    break
            else:
                misses = 0 if _answers(head) else misses + 1
                if misses >= 2:  # `ray stop` (which kills every Ray process) or a crash:
                    # ``ray start --block`` counts a SIGTERM'd child as a clean exit and blocks on
                    print("the warm Ray head's GCS or raylet stopped answering (`ray stop`?): "
                          "stopping", flush=True)
                    break
                keeper.tick()
                if driver is not None:
                    listening = driver.poll() is None and os.path.exists(sock)
                    if listening != head.get("driver", False):
                        head["driver"] = listening  # runs hand their steps to it
                        publish()
                    if driver.poll() is not None and \
                            time.monotonic() - driver_started > DRIVER_RESTART_S:
                        # it died: a new one (runs drive themselves meanwhile)
                        driver, driver_started = _start_driver(sock, d), time.monotonic()
                since = _idle_since(started)
                if since is not None and time.time() - since > idle_timeout:
                    print(f"warm Ray head idle for {idle_timeout:.0f} s: stopping", flush=True)
                    break
            time.sleep(0.5 if head["ready"] else 0.1)
    finally:
        if not head["ready"]:  # before head.json goes: ``up`` reads this first
            code = child.poll()
            _start_failed(d, (f"`ray start` exited with status {code} before the head was "
                              f"ready: {_tail(head_log)}") if code is not None else
                          f"the head did not accept connections within {START_TIMEOUT_S:.0f} s")
        (d / "head.json").unlink(missing_ok=True)
        if child.poll() is None:
            child.terminate()  # ``ray start --block`` stops the head's processes on SIGTERM
            try:
                child.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        import shutil

        shutil.rmtree(temp, ignore_errors=True)  # the head's session files and logs
        os.killpg(os.getpgid(0), signal.SIGKILL)  # whatever is left, this process last


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--num-cpus", type=int, default=None)
    ap.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_S)
    ap.add_argument("--detach", action="store_true", help="fork: the caller need not reap us")
    a = ap.parse_args()
    if a.detach and os.fork() > 0:
        os._exit(0)
    supervise(a.num_cpus, a.idle_timeout)
