"""A Ray driver kept ready on the warm head, so a run in a new process is not one itself.

A run that connects to the warm head (``runtime.warmray``) still pays for being a Ray
driver: ``import ray`` (~0.5 s on a 2-core machine), Ray's per-job serialization
context (pydantic, pyarrow: ~0.3 s), and ``ray.shutdown()`` at exit (~0.3 s, a C++
thread join). The head's supervisor keeps a *template* process that has imported all of
that and never connects to Ray. A run asks it over a Unix socket (``driver.sock`` in the
head's session folder); it forks a child, which becomes the run's Ray driver -- a new Ray
job, as the run's own process would be -- with the run's environment, working directory
and ``sys.path``, writing to the run's terminal (its stdout and stderr are passed with
the request). The run's process plans, records the history and prints; the child runs
the steps and streams every step event back; a Ctrl-C in the run cancels the child's
steps. The child leaves Ray after the run has returned.

The template never imports a pipeline's code: each child unpickles the run's functions
(shipped by value, as Ray ships them to workers) after the fork, so an edited step runs
the edited code. The child declines (the run then is a driver itself, as before) when
the run's Python, airflowdsl code or ``RAY_*`` environment differs from the template's.
``AIRFLOWDSL_WARM_DRIVER=0`` turns it off.
"""

from __future__ import annotations

import os
import pickle
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from airflowdsl.errors import WarmDriverError
from airflowdsl.runtime.warmray import DRIVER_SOCKET as SOCKET
from airflowdsl.runtime.warmray import code_id
from airflowdsl.runtime.warmray import driver_enabled as enabled

#: How long a run waits to connect to the template, and for the child's answer.
CONNECT_TIMEOUT_S = 2.0
ANSWER_TIMEOUT_S = 15.0
#: How often the run's process, while steps run, does its own periodic work (flushing
#: finished steps to the history) and checks for Ctrl-C.
POLL_S = 0.2
#: How long a child may take to leave Ray after its run before it is ended (SIGALRM).
LEAVE_S = 60
#: Library modules the template imports once (what every run's driver imports).
PRELOAD = ("numpy", "ray", "airflowdsl.runtime.executor", "airflowdsl.runtime.scheduler",
           "airflowdsl.runtime.raycluster", "airflowdsl.runtime.runlog",
           "airflowdsl.runtime.watchdog", "airflowdsl.air.progress", "cloudpickle")

Event = Callable[[str, str, dict[str, Any]], None]


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=5)
    return struct.pack("!Q", len(data)) + data


class _Reader:
    """Length-prefixed pickled messages from a socket, read as they arrive."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf, self.eof = sock, b"", False

    def poll(self, timeout: float) -> list[Any]:
        """The messages complete after waiting up to ``timeout`` for bytes."""
        if not self.eof and select.select([self.sock], [], [], timeout)[0]:
            chunk = self.sock.recv(1 << 20)
            self.eof = not chunk
            self.buf += chunk
        out = []
        while len(self.buf) >= 8:
            (n,) = struct.unpack("!Q", self.buf[:8])
            if len(self.buf) < 8 + n:
                break
            out.append(pickle.loads(self.buf[8:8 + n]))
            self.buf = self.buf[8 + n:]
        return out


def _fingerprint(env: dict[str, str], code: str) -> dict[str, Any]:
    """What must match between the run's process and the template: the interpreter, the
    airflowdsl code (``warmray.code_id``), and Ray's environment variables (Ray reads many
    at import)."""
    return {"python": sys.executable, "code": code,
            "ray_env": {k: v for k, v in env.items()
                        if k.startswith("RAY_") and k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}}


# --- the run's side -------------------------------------------------------------------

def run(head: dict[str, Any], target: Callable[..., Any], payload: Any, *, emit: Event,
        control: Any, by_value: set[str]) -> bool:
    """Run ``target(payload, send, control)`` in a child of the head's template; its
    ``send(step, status, data)`` calls reach ``emit`` here. False when no warm driver
    took the run (none, it declined, or the payload does not pickle): nothing ran.

    Raises:
        WarmDriverError: the child did not answer or exited before the run ended.
        BaseException: what ``target`` raised in the child.
    """
    path = os.path.join(str(head.get("temp_dir", "")), SOCKET)
    if not head.get("driver") or not os.path.exists(path) or not _on_fds():
        return False
    try:
        blob = _dumps((target, payload), by_value)
    except Exception:  # something of the run's that does not pickle: drive it here
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(path)
        except OSError:
            return False
        # the head's code is this process's: ``warmray.usable_head`` checked it
        job = {**_fingerprint(dict(os.environ), str(head.get("code"))),
               "env": dict(os.environ), "cwd": os.getcwd(),
               "path": list(sys.path), "argv": list(sys.argv), "blob": blob}
        frame = _frame(job)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            socket.send_fds(sock, [frame[:8]], [1, 2])
            sock.sendall(frame[8:])
        except OSError:  # the child has not started anything: drive the run here
            return False
        taken = _follow(sock, emit, control)
    finally:
        sock.close()
    if taken and not _EXIT_HOOK[0]:
        import atexit

        from airflowdsl.runtime.raycluster import skip_final_gc

        _EXIT_HOOK[0] = True  # as after leaving Ray (~0.1 s of exit here)
        atexit.register(skip_final_gc)
    return taken


_EXIT_HOOK = [False]  # skip_final_gc registered in this process


def _on_fds() -> bool:
    """Whether this process prints to file descriptors 1 and 2 (what the child is given);
    not so under a notebook kernel or a captured ``sys.stdout``: the run drives itself."""
    try:
        return sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _dumps(obj: Any, by_value: set[str]) -> bytes:
    """cloudpickle with the run's own modules by value (``raycluster.ship_by_value``)."""
    import cloudpickle

    from airflowdsl.runtime.raycluster import ship_by_value

    ship_by_value(by_value, pickler=cloudpickle)
    return cloudpickle.dumps(obj, protocol=5)


def _follow(sock: socket.socket, emit: Event, control: Any) -> bool:
    reader, told, started = _Reader(sock), False, False
    answer_by = time.monotonic() + ANSWER_TIMEOUT_S
    while True:
        for msg in reader.poll(POLL_S):
            kind = msg[0]
            if kind == "declined":
                return False
            if kind == "started":
                started = True
            elif kind == "event":
                emit(*msg[1:])
            elif kind == "done":
                return True
            elif kind == "raised":
                raise msg[1]
        if reader.eof:
            raise WarmDriverError("the warm Ray head's driver process exited before the run "
                                  "ended (was the head stopped?); its steps' logs are in the "
                                  "run's log folder")
        if not started and time.monotonic() > answer_by:
            raise WarmDriverError(f"the warm Ray head's driver process did not answer within "
                                  f"{ANSWER_TIMEOUT_S:.0f} s; `airflowdsl ray down`, or run with "
                                  "AIRFLOWDSL_WARM_DRIVER=0")
        if started and control.cancelled and not told:
            told = True
            sock.sendall(_frame(("cancel",)))
        if control.tick is not None:
            control.tick()


# --- the template and its children ----------------------------------------------------

def serve(path: str) -> None:
    """The template's body (``python -m airflowdsl.runtime.warmdriver PATH``): import,
    listen, fork a child per run; exits when its parent (the supervisor) is gone."""
    import importlib
    import signal

    from airflowdsl.runtime.spareworkers import preload_serializers

    base = dict(os.environ)
    mine = _fingerprint(base, code_id())
    for name in PRELOAD:
        importlib.import_module(name)
    preload_serializers()
    # what the imports set (Ray: RAY_CLIENT_MODE), kept in each child's environment
    mine["added"] = {k: v for k, v in os.environ.items() if k not in base}
    parent = os.getppid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):  # a template before this one (it died): its socket is dead
        os.unlink(path)
    listener.bind(path)  # a run connecting before ``listen`` is refused: it drives itself
    listener.listen(16)
    listener.settimeout(1.0)
    while os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the run's own subprocesses
            listener.close()
            try:
                _child(conn, mine)
            finally:
                os._exit(0)
        conn.close()


def _child(conn: socket.socket, mine: dict[str, Any]) -> None:
    conn.settimeout(ANSWER_TIMEOUT_S)
    head, fds, _, _ = socket.recv_fds(conn, 8, 2)
    (n,) = struct.unpack("!Q", head)
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        if not chunk:
            return
        body += chunk
    job = pickle.loads(body)
    conn.settimeout(None)
    lock = threading.Lock()

    def send(msg: Any) -> None:
        with lock:
            conn.sendall(_frame(msg))

    # what importing Ray set in the run's process too (RAY_CLIENT_MODE) is no difference
    job["ray_env"] = {k: v for k, v in job["ray_env"].items() if mine["added"].get(k) != v}
    differs = [k for k in ("python", "code", "ray_env") if job[k] != mine[k]]
    if differs or len(fds) != 2:
        send(("declined", differs))
        return
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update({**job["env"], **mine["added"]})
    sys.path[:] = job["path"]
    sys.argv[:] = job["argv"]
    try:
        target, payload = pickle.loads(job["blob"])
    except Exception as exc:  # noqa: BLE001 - e.g. a module only the run's process has
        send(("declined", [f"{type(exc).__name__}: {exc}"]))
        return
    for fd, std in zip(fds, (1, 2), strict=True):
        os.dup2(fd, std)
        os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    from airflowdsl.runtime.scheduler import Control

    control = Control()
    threading.Thread(target=_listen, args=(conn, control), daemon=True).start()
    send(("started",))
    try:
        target(payload, lambda *event: send(("event", *event)), control)
        send(("done",))
    except BaseException as exc:  # noqa: BLE001 - the run's process raises it
        try:
            send(("raised", exc))
        except Exception:  # does not pickle, or the run is gone
            try:
                send(("raised", WarmDriverError(f"{type(exc).__name__}: {exc}")))
            except OSError:
                pass
    finally:
        _leave(conn)


def _listen(conn: socket.socket, control: Any) -> None:
    """Cancel the steps on the run's Ctrl-C, or when the run's process is gone."""
    reader = _Reader(conn)
    while not reader.eof:
        if any(m[0] == "cancel" for m in reader.poll(1.0)):
            control.cancelled = True
    control.cancelled = True


def _leave(conn: socket.socket) -> None:
    """Hand the run's terminal back, then leave Ray (off the run's critical path; ended
    by SIGALRM if that takes over ``LEAVE_S``)."""
    import signal

    signal.alarm(LEAVE_S)
    sys.stdout.flush()
    sys.stderr.flush()
    conn.close()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001 - the job ends with this process either way
        pass


__all__ = ["SOCKET", "WarmDriverError", "enabled", "run", "serve"]


if __name__ == "__main__":
    serve(sys.argv[1])
