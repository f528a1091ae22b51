"""Every shipped pipeline and example runs, as a user runs it, on a fresh store.

- The README's first command (after its install step) runs exactly as written, in a
  copy of the checkout's pipelines/, then again: the second run executes no step. This
  is a separate process (its own local Ray, as a user's shell starts it) with a time
  limit, so a hang fails the test with the process's output instead of blocking the suite.
- ``airflowdsl run`` on every other ``pipelines/*.py``: the CLI app called in this
  process (typer's CliRunner), on the suite's one local Ray (``ray_session``).
- ``python examples/X.py`` on every example: the file run as ``__main__`` (runpy) in
  this process, on the suite's Ray; its ``ray.init`` is skipped as Ray is up.

The in-process runs save a Python start, the framework imports and a Ray start and
stop per file (~5-10 s each on 2 cores); pytest-timeout bounds a hang.
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from typer.testing import CliRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIMIT_S = 600
FIRST = "breast_cancer.py"  # the README's first command runs it
#: every shipped file by name (test_every_shipped_file_is_listed fails on one missing here)
PIPELINES = ["breast_cancer.py", "cartpole_rl.py", "compare_gbdt.py", "tabular_torch.py",
             "text_hf.py"]
EXAMPLES = ["horovod_trainer.py", "huggingface_trainer.py", "lightgbm_trainer.py",
            "rl_trainer.py", "sklearn_trainer.py", "tf_trainer.py", "torch_pipeline.py",
            "torch_trainer.py", "xgboost_trainer.py"]


def test_every_shipped_file_is_listed() -> None:
    assert sorted(p.name for p in (ROOT / "pipelines").glob("*.py")) == PIPELINES
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == EXAMPLES


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    bindir = str(Path(sys.executable).parent)
    return {**env, "AIRFLOWDSL_HOME": str(home), "PATH": bindir + os.pathsep + env["PATH"]}


def _run(cmd: str | list[str], *, cwd: Path, home: Path) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, env=_env(home), shell=isinstance(cmd, str),
                              capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-4000:]
        pytest.fail(f"{cmd} did not finish within {LIMIT_S} s:\n{out!r}")
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{out[-6000:]}"
    return out


def readme_first_command() -> str:
    """The README's first ``bash`` block's command, less its install step (done by CI)."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("bash scripts/install.sh && ")
    return lines[0].removeprefix("bash scripts/install.sh && ")


def test_readme_test_command_is_what_ci_runs() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    test_cmd = [ln for ln in blocks[1].splitlines() if ln and not ln.startswith("#")]
    assert test_cmd == ["bash scripts/install.sh && bash scripts/test.sh"]
    assert test_cmd[0] in (ROOT / ".ci" / "run").read_text()


def test_readme_first_command_runs_as_written_then_fully_cached(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    command = readme_first_command()
    assert FIRST in command
    out = _run(command, cwd=tmp_path, home=tmp_path / ".airflowdsl")
    assert re.search(r"succeeded in [\d.]+s \(\d+ ran, 0 cached\)", out), out[-3000:]
    svg = next(tmp_path.glob("*.svg"))
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    again = _run(command, cwd=tmp_path, home=tmp_path / ".airflowdsl")
    assert re.search(r"succeeded in [\d.]+s \(0 ran, \d+ cached\)", again), again[-3000:]


@pytest.fixture()
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working directory and store home, as ``_env`` gives a subprocess; the
    environment variables a file sets while it runs are undone afterwards."""
    saved = dict(os.environ)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIRFLOWDSL_HOME", str(tmp_path / ".airflowdsl"))
    yield tmp_path
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


@pytest.mark.parametrize("name", [p for p in PIPELINES if p != FIRST])
def test_pipeline_runs_with_the_cli(name: str, user_dir: Path, ray_session: None) -> None:
    from airflowdsl.cli import app

    done = CliRunner().invoke(app, ["run", str(ROOT / "pipelines" / name)])
    out = done.output
    assert done.exit_code == 0, (f"airflowdsl run {name} exited {done.exit_code} "
                                 f"({done.exception!r}):\n{out[-6000:]}")
    assert re.search(r"succeeded in [\d.]+s", out), out[-3000:]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name: str, user_dir: Path, ray_session: None,
                      capfd: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(ROOT / "examples" / name)
    monkeypatch.setattr(sys, "argv", [path])  # the examples' argparse: no options given
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # as `python examples/X.py` does
    runpy.run_path(path, run_name="__main__")  # an exception fails the test with its traceback
    captured = capfd.readouterr()
    out = captured.out + captured.err
    assert "Traceback" not in out, out[-3000:]
