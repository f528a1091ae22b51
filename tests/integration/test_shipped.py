"""Every shipped pipeline and example runs, as a user runs it, on a fresh store.

- The README's first command (after its install step) runs exactly as written, in a
  copy of the checkout's pipelines/, then again: the second run executes no step.
- ``airflowdsl run`` on every other ``pipelines/*.py``.
- ``python examples/X.py`` on every example.

Each is a separate process (its own local Ray) with a time limit, so a hang fails the
test with the process's output instead of blocking the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

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


@pytest.mark.parametrize("name", [p for p in PIPELINES if p != FIRST])
def test_pipeline_runs_with_the_cli(name: str, tmp_path: Path) -> None:
    out = _run(["airflowdsl", "run", str(ROOT / "pipelines" / name)], cwd=tmp_path,
               home=tmp_path / ".airflowdsl")
    assert re.search(r"succeeded in [\d.]+s", out), out[-3000:]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name: str, tmp_path: Path) -> None:
    out = _run([sys.executable, str(ROOT / "examples" / name)], cwd=tmp_path,
               home=tmp_path / ".airflowdsl")
    assert "Traceback" not in out, out[-3000:]
