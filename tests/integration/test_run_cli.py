"""The run/runs/show/cache/explain/graph commands and their exit codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airflowdsl.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

PIPE = '''
import airflowdsl as af

@af.ingest
def src(n: int = 3) -> list:
    return list(range(n))

@af.preprocess
def square(xs: list, fail: bool = False) -> list:
    print("squaring", len(xs), "numbers")
    if fail:
        raise RuntimeError("square refused")
    return [x * x for x in xs]

@af.predict
def score(xs: list) -> dict:
    return {"total": float(sum(xs))}

@af.pipeline
def clipipe(n: int = 3, fail: bool = False):
    return score(square(src(n=n), fail=fail))
'''


@pytest.fixture()
def env(tmp_path: Path) -> tuple[CliRunner, str, str]:
    f = tmp_path / "clipipe.py"
    f.write_text(PIPE)
    return CliRunner(), str(f), str(tmp_path / "store")


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "250"})  # tables unfolded
    return res.exit_code, res.output


def test_run_rerun_history_show_cache(env: tuple[CliRunner, str, str], tmp_path: Path) -> None:
    runner, f, store = env
    code, out = invoke(runner, "run", f, "-p", "n=4", "--store", store)
    assert code == 0, out
    assert "succeeded" in out and "3 ran, 0 cached" in out and "total=14" in out
    run_id = re.search(r"run (\d{8}-\d{6}-\w+) succeeded", out).group(1)  # type: ignore[union-attr]
    code, out = invoke(runner, "run", f, "-p", "n=4", "--store", store)
    assert code == 0 and "0 ran, 3 cached" in out
    code, out = invoke(runner, "explain", f, "-p", "n=5", "--store", store)
    assert code == 0 and "param n changed: 4 -> 5" in out and "upstream src re-runs" in out
    code, out = invoke(runner, "runs", "--store", store, "--pipeline", "clipipe")
    assert code == 0 and run_id in out
    code, out = invoke(runner, "show", run_id, "--store", store)
    assert code == 0 and "square" in out and "score.total = 14" in out
    code, out = invoke(runner, "cache", "ls", "--store", store)
    assert code == 0 and "3 entries" in out
    dag = tmp_path / "dag.mmd"
    code, out = invoke(runner, "graph", f, "-o", str(dag), "--run", run_id, "--store", store)
    assert code == 0 and dag.exists(), out
    code, out = invoke(runner, "cache", "clear", "--pipeline", "clipipe", "--store", store)
    assert code == 0 and "removed 3" in out
    code, out = invoke(runner, "explain", f, "-p", "n=4", "--store", store)
    assert "artifact is gone" in out


def test_failed_run_exits_1_with_user_traceback(env: tuple[CliRunner, str, str]) -> None:
    runner, f, store = env
    code, out = invoke(runner, "run", f, "-p", "fail=true", "--store", store)
    assert code == 1
    assert "square refused" in out and 'raise RuntimeError("square refused")' in out
    assert "failed" in out
    # the failed step's log path is shown, and holds what the step printed
    log = re.search(r"log of square: (\S+square\.log)", out)
    assert log is not None, out
    assert "squaring 3 numbers" in Path(log.group(1)).read_text()
    run_id = re.search(r"airflowdsl logs (\d{8}-\d{6}-\w+)", out).group(1)  # type: ignore[union-attr]
    code, out = invoke(runner, "logs", run_id, "square", "--store", store)
    assert code == 0 and "squaring 3 numbers" in out
    assert invoke(runner, "logs", run_id, "nope", "--store", store)[0] == 2


def test_bad_input_exits_2(env: tuple[CliRunner, str, str], tmp_path: Path) -> None:
    runner, f, store = env
    assert invoke(runner, "run", str(tmp_path / "missing.py"), "--store", store)[0] == 2
    assert invoke(runner, "run", f, "-p", "n=notanint", "--store", store)[0] == 2
    assert invoke(runner, "run", f, "-p", "oops", "--store", store)[0] == 2
    code, out = invoke(runner, "run", f, "--from", "nope", "--store", store)
    assert code == 2 and "nope" in out
    assert invoke(runner, "show", "no-such-run", "--store", store)[0] == 2
