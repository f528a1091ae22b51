"""A warm Ray head started with other airflowdsl code than is installed is not used."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflowdsl.runtime import warmray


def test_code_id_follows_the_package_sources_only(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    first = warmray.code_id(pkg)
    (pkg / "notes.txt").write_text("not code")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert warmray.code_id(pkg) == first
    (pkg / "sub" / "b.py").write_text("y = 3\n")  # same size, newer: another id
    os.utime(pkg / "sub" / "b.py", ns=(1, 2))
    assert warmray.code_id(pkg) != first


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    """Two listening local ports: a head's GCS and raylet that answer."""
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    yield socks[0].getsockname()[1], socks[1].getsockname()[1]
    for s in socks:
        s.close()


def _head(state: Path, code: str, ports: tuple[int, int] = (1, 1)) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "head.json").write_text(json.dumps({
        "pid": os.getpid(), "address": f"127.0.0.1:{ports[0]}",
        "raylet": f"127.0.0.1:{ports[1]}", "ready": True, "code": code}))


def test_a_head_with_other_code_is_refused_once_with_the_restart_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        ports: tuple[int, int]) -> None:
    monkeypatch.setenv("AIRFLOWDSL_RAY_DIR", str(tmp_path / "ray"))
    monkeypatch.setattr(warmray, "_TOLD", [False])
    _head(tmp_path / "ray", warmray.code_id(), ports)
    assert warmray.usable_head() is not None
    _head(tmp_path / "ray", "0" * 24, ports)
    assert warmray.usable_head() is None and warmray.usable_head() is None
    err = capsys.readouterr().err
    assert err.count("was started with other airflowdsl") == 1
    assert "airflowdsl ray down && airflowdsl ray up" in err


def test_a_head_that_does_not_answer_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        ports: tuple[int, int]) -> None:
    # `ray stop` kills the head's GCS and raylet while its supervisor lives on: a run that
    # connected would wait out Ray's retries (~14 min); it starts its own Ray instead
    monkeypatch.setenv("AIRFLOWDSL_RAY_DIR", str(tmp_path / "ray"))
    monkeypatch.setattr(warmray, "_TOLD", [False])
    with socket.create_server(("127.0.0.1", 0)) as gone:
        dead = gone.getsockname()[1]
    for gcs, raylet in ((dead, ports[1]), (ports[0], dead)):
        _head(tmp_path / "ray", warmray.code_id(), (gcs, raylet))
        assert warmray.usable_head() is None
    assert capsys.readouterr().err.count("does not answer") == 1
    _head(tmp_path / "ray", warmray.code_id(), ports)
    assert warmray.usable_head() is not None


def test_ray_status_says_a_head_with_other_code_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ports: tuple[int, int]) -> None:
    from typer.testing import CliRunner

    from airflowdsl.cli import app

    monkeypatch.setenv("AIRFLOWDSL_RAY_DIR", str(tmp_path / "ray"))
    _head(tmp_path / "ray", warmray.code_id(), ports)
    with open(tmp_path / "ray" / "head.json") as fh:
        head = json.load(fh)
    head.update(started=0.0, idle_timeout=900.0)
    (tmp_path / "ray" / "head.json").write_text(json.dumps(head))
    ok = CliRunner().invoke(app, ["ray", "status"])
    assert ok.exit_code == 0 and "runs do not use it" not in ok.output
    head["code"] = "0" * 24
    (tmp_path / "ray" / "head.json").write_text(json.dumps(head))
    stale = CliRunner().invoke(app, ["ray", "status"])
    assert stale.exit_code == 0 and "runs do not use it" in stale.output
    assert "airflowdsl ray down && airflowdsl ray up" in stale.output
