"""A run's logs read one way for local and URI stores (``runtime.runlog``, ``airflowdsl
logs``), with the parts training workers on other nodes uploaded (``air.workerlog``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airflowdsl.air import workerlog
from airflowdsl.cli import app
from airflowdsl.runtime.history import History, new_run_id
from airflowdsl.runtime.runlog import LogUpload, log_names, read_log
from airflowdsl.runtime.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["ray.log", "fit@ab12cd34-77.log", "fit.log", "a.log", "fit_2.log", "sub.fit.log"]


def _store_with_logs(root: Path, run_id: str) -> ArtifactStore:
    folder = root / "runs" / run_id / "logs"
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).write_text(f"text of {name}\n")
    return ArtifactStore.open(root)


def test_each_steps_worker_parts_follow_it_and_ray_log_comes_last(tmp_path: Path) -> None:
    st = _store_with_logs(tmp_path, "r1")
    assert log_names(st, "r1") == ["a.log", "fit.log", "fit@ab12cd34-77.log", "fit_2.log",
                                   "sub.fit.log", "ray.log"]
    assert log_names(st, "r1", "fit") == ["fit.log", "fit@ab12cd34-77.log"]
    assert log_names(st, "r1", "sub") == [] and log_names(st, "nope") == []
    assert read_log(st, "r1", "fit_2.log") == "text of fit_2.log\n"


def test_airflowdsl_logs_shows_a_step_with_its_workers_parts(tmp_path: Path) -> None:
    run_id = new_run_id()
    _store_with_logs(tmp_path, run_id)
    History.for_root(str(tmp_path)).start_run(run_id, "p", {}, str(tmp_path), time.time())
    cli = CliRunner()
    out = cli.invoke(app, ["logs", run_id, "fit", "--store", str(tmp_path)])
    assert out.exit_code == 0, out.output
    folder = os.path.join(str(tmp_path), "runs", run_id, "logs")
    assert out.output == (f"==> {folder}/fit.log <==\ntext of fit.log\n"
                          f"==> {folder}/fit@ab12cd34-77.log <==\ntext of fit@ab12cd34-77.log\n")
    everything = cli.invoke(app, ["logs", run_id, "--store", str(tmp_path)])
    assert everything.output.index("ray.log <==") > everything.output.index("sub.fit.log <==")
    missing = cli.invoke(app, ["logs", run_id, "sub", "--store", str(tmp_path)])
    assert missing.exit_code != 0 and "no log of step 'sub'" in missing.output
    assert "fit, fit_2, sub.fit" in missing.output


def test_a_worker_writes_into_the_steps_log_or_on_another_node_a_part_of_its_own(
        tmp_path: Path) -> None:
    """In a process of its own (``attach`` sends file descriptors 1 and 2 to the log)."""
    script = textwrap.dedent(f"""
        import json
        from airflowdsl.air import workerlog

        step_log = {str(tmp_path / "fit.log")!r}
        # the step's node, or a disk every node sees: into the step's log
        with workerlog.bound(workerlog.StepLog("r2", "fit", step_log)):
            assert workerlog.attach(workerlog.current()) is None
        print("rank 0 here", flush=True)
        # another node than the step's (a URI store): a part of its own, uploaded
        workerlog._node_id = lambda: "feedbeef00112233"
        mine = workerlog.attach(workerlog.StepLog(
            "r2", "fit", step_log, node="0123abcd", upload=lambda p: print("uploading", p)))
        print("rank 1 here", flush=True)
        workerlog.upload(mine)
        with open({str(tmp_path / "result.json")!r}, "w") as out:
            json.dump(mine.path, out)
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path / "node"), "PYTHONPATH": str(ROOT)}
    (tmp_path / "node").mkdir()
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=60,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # all of it went into log files
    assert (tmp_path / "fit.log").read_text() == "rank 0 here\n"
    part = json.loads((tmp_path / "result.json").read_text())
    spool = workerlog.spool_dir("r2").replace(tempfile.gettempdir(), str(tmp_path / "node"))
    assert os.path.dirname(part) == spool
    assert os.path.basename(part).startswith("fit@feedbeef-") and part.endswith(".log")
    assert Path(part).read_text() == f"rank 1 here\nuploading {part}\n"


def test_log_upload_moves_a_worker_part_into_the_run_logs(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "node"))
    st = ArtifactStore.open(tmp_path / "store")
    spool = Path(workerlog.spool_dir("r3"))
    spool.mkdir(parents=True)
    (spool / "fit@ab12cd34-9.log").write_text("rank 1 says hi\n")
    workerlog.upload(workerlog.WorkerLog(str(spool / "fit@ab12cd34-9.log"), LogUpload(st, "r3")))
    assert read_log(st, "r3", "fit@ab12cd34-9.log") == "rank 1 says hi\n"
    assert not spool.exists()  # nothing left on the worker's node
    workerlog.upload(workerlog.WorkerLog(str(spool / "gone.log"), LogUpload(st, "r3")))  # no raise
