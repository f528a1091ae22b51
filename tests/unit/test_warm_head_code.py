"""A warm Ray head started with other airflowdsl code than is installed is not used."""

from __future__ import annotations

import json
import os
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


def _head(state: Path, code: str) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "head.json").write_text(json.dumps({
        "pid": os.getpid(), "address": "127.0.0.1:1", "ready": True, "code": code}))


def test_a_head_with_other_code_is_refused_once_with_the_restart_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOWDSL_RAY_DIR", str(tmp_path / "ray"))
    monkeypatch.setattr(warmray, "_TOLD", [False])
    _head(tmp_path / "ray", warmray.code_id())
    assert warmray.usable_head() is not None
    _head(tmp_path / "ray", "0" * 24)
    assert warmray.usable_head() is None and warmray.usable_head() is None
    err = capsys.readouterr().err
    assert err.count("was started with other airflowdsl") == 1
    assert "airflowdsl ray down && airflowdsl ray up" in err


def test_ray_status_says_a_head_with_other_code_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from airflowdsl.cli import app

    monkeypatch.setenv("AIRFLOWDSL_RAY_DIR", str(tmp_path / "ray"))
    _head(tmp_path / "ray", warmray.code_id())
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
