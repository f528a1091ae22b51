"""Ray AIR's own documentation code runs on airflowdsl (issue 11's "done when").

tests/resources/air_docs/ holds Ray AIR's doc code for the trainers, checkpoints,
predictors, starters and the tuner, ported by changing imports only (plus local data
instead of downloads, smaller sizes, and the third-party changes each file's header
lists). They run one after another in ONE fresh Python process (this file run as a
script) that shares one local Ray: each file as ``__main__`` via ``runpy``, its cwd a
temporary folder. A file that raises is reported by name with its traceback; the others
still run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "tests" / "resources" / "air_docs"
LIMIT_S = 900

#: run in this order (cheap ones first, so a failure shows early)
FILES = ["preprocessors.py", "checkpoint_usage.py", "predictors.py", "lightgbm_trainer.py",
         "sklearn_trainer.py", "xgboost_batch_prediction.py", "air_key_concepts.py",
         "xgboost_starter.py", "torch_trainer.py", "hvd_trainer.py",
         "pytorch_tabular_starter.py", "tf_starter.py", "tf_tabular_starter.py",
         "hf_trainer.py", "rl_trainer.py", "tuner.py"]
#: imported by a file above (tuner.py), not run on its own
HELPERS = ["torch_linear_example.py"]
#: what CI runs by default (~150 s budget): every trainer page but RL, checkpoints and
#: predictors (102 s of files on the loaded 2-CPU dev box); AIRFLOWDSL_AIR_DOCS=all runs
#: every file (the starters, the key-concepts page and the Tuner guide add Tune trials,
#: rl_trainer an RLlib PPO run, preprocessors.py ~50 s of small Ray Data aggregations)
CI_FILES = ["checkpoint_usage.py", "predictors.py", "lightgbm_trainer.py",
            "sklearn_trainer.py", "xgboost_batch_prediction.py", "torch_trainer.py",
            "hvd_trainer.py", "tf_starter.py", "hf_trainer.py"]

START, OK, FAIL = "AIRDOC-START", "AIRDOC-OK", "AIRDOC-FAIL"


def test_every_doc_file_is_listed() -> None:
    assert sorted(p.name for p in DOCS.glob("*.py")) == sorted(FILES + HELPERS)
    assert set(CI_FILES) <= set(FILES)


def _chosen() -> list[str]:
    return FILES if os.environ.get("AIRFLOWDSL_AIR_DOCS") == "all" else CI_FILES


def test_ray_air_doc_code_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(AIRFLOWDSL_HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(DOCS), env.get("PYTHONPATH", "")]))
    files = _chosen()
    cmd = [sys.executable, __file__, *files]
    try:
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=LIMIT_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        started = re.findall(rf"^{START} (\S+)", out, re.M)
        raise AssertionError(f"the AIR doc files did not finish within {LIMIT_S} s (running: "
                             f"{started[-1] if started else 'none yet'}):\n{out[-4000:]}") from None
    out = done.stdout + done.stderr
    passed = re.findall(rf"^{OK} (\S+)", done.stdout, re.M)
    failed = re.findall(rf"^{FAIL} (\S+)", done.stdout, re.M)
    assert done.returncode == 0 and passed == files, (
        f"AIR doc files failed: {failed or 'none reported'}; ran: {passed}; exit "
        f"{done.returncode}\n" + _failure_tails(done.stdout) + out[-3000:])


def _failure_tails(stdout: str) -> str:
    return "".join(m.group(0)[-3000:] + "\n" for m in
                   re.finditer(rf"^{FAIL} .*?(?=^{START} |\Z)", stdout, re.M | re.S))


def main(names: list[str]) -> int:
    """Run each doc file as ``__main__`` in this process (one Ray for all of them)."""
    import runpy

    failures = 0
    for name in names:
        print(f"\n{START} {name}", flush=True)
        began = time.perf_counter()
        try:
            runpy.run_path(str(DOCS / name), run_name="__main__")
        except BaseException:  # noqa: BLE001 - report every file, then fail
            failures += 1
            print(f"\n{FAIL} {name}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"\n{OK} {name} {time.perf_counter() - began:.1f}s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
