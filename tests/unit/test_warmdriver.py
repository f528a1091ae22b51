"""The warm driver's protocol without a Ray cluster: a real template process (it imports
Ray, never connects here) forks a child per request; events, errors, cancellation, a
child that dies, and the refusals (another environment, nothing listening)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflowdsl.runtime import warmdriver, warmray
from airflowdsl.runtime.scheduler import Control

ROOT = Path(__file__).resolve().parents[2]


def echo(payload: Any, send: Any, control: Any) -> None:
    """A target: one event per item, then a raise when asked to."""
    for item in payload["items"]:
        send(item, "succeeded", {"pid": os.getpid(), "cwd": os.getcwd()})
    if payload.get("raise"):
        raise KeyError(payload["raise"])
    if payload.get("wait_cancel"):
        deadline = time.monotonic() + 60
        while not control.cancelled and time.monotonic() < deadline:
            time.sleep(0.05)
        send("waited", "cancelled" if control.cancelled else "timeout", {})
    if payload.get("die"):
        os._exit(3)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("driver")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen([sys.executable, "-m", "airflowdsl.runtime.warmdriver",
                             str(folder / warmdriver.SOCKET)], env=env)
    deadline = time.monotonic() + 60
    while not (folder / warmdriver.SOCKET).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (folder / warmdriver.SOCKET).exists(), "the template did not listen"
    yield {"temp_dir": str(folder), "driver": True, "code": warmray.code_id()}
    proc.kill()
    proc.wait(timeout=30)


@pytest.fixture(autouse=True)
def on_fds(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest captures sys.stdout (not fd 1), where a run drives itself; here the child
    is given this process's descriptors 1 and 2 all the same."""
    assert not warmdriver._on_fds()
    monkeypatch.setattr(warmdriver, "_on_fds", lambda: True)


def _go(head: dict[str, Any], payload: dict[str, Any], control: Control | None = None
        ) -> tuple[bool, list[tuple[str, str, dict[str, Any]]]]:
    events: list[tuple[str, str, dict[str, Any]]] = []
    ctl = control or Control()
    taken = warmdriver.run(head, echo, payload, emit=lambda *e: events.append(e),
                           control=ctl, by_value=set())
    return taken, events


def test_events_arrive_in_order_from_a_child_in_this_working_directory(
        head: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    taken, events = _go(head, {"items": ["a", "b", "c"]})
    assert taken
    assert [e[0] for e in events] == ["a", "b", "c"]
    assert {e[2]["pid"] for e in events} != {os.getpid()}
    assert events[0][2]["cwd"] == str(tmp_path)
    taken, again = _go(head, {"items": ["a"]})
    assert again[0][2]["pid"] != events[0][2]["pid"]  # a new child per run


def test_what_the_target_raises_is_raised_here(head: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="missing-thing"):
        _go(head, {"items": ["a"], "raise": "missing-thing"})


def test_ctrl_c_here_cancels_there(head: dict[str, Any]) -> None:
    control = Control()

    def tick() -> None:
        control.cancelled = True  # what the run's SIGINT handler does

    control.tick = tick
    taken, events = _go(head, {"items": ["a"], "wait_cancel": True}, control)
    assert taken and events[-1][:2] == ("waited", "cancelled")


def test_a_child_that_dies_is_an_error_not_a_hang(head: dict[str, Any]) -> None:
    t = time.monotonic()
    with pytest.raises(warmdriver.WarmDriverError, match="exited before the run ended"):
        _go(head, {"items": ["a"], "die": True})
    assert time.monotonic() - t < 10


def test_another_ray_environment_or_no_template_is_declined(
        head: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAY_CLIENT_MODE", "0")  # what importing Ray sets: no difference
    assert _go(head, {"items": ["a"]})[0]
    monkeypatch.setenv("RAY_SOMETHING_ELSE", "1")  # Ray reads its variables at import
    assert _go(head, {"items": ["a"]}) == (False, [])
    monkeypatch.delenv("RAY_SOMETHING_ELSE")
    nowhere = {**head, "temp_dir": str(tmp_path)}
    assert _go(nowhere, {"items": ["a"]}) == (False, [])
    monkeypatch.setenv("AIRFLOWDSL_WARM_DRIVER", "0")
    assert not warmdriver.enabled()
