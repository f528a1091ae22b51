"""Shared fixtures: one real local Ray for the whole test run, sized for 2 cores."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = Path(__file__).resolve().parent / "resources"
if str(RESOURCES) not in sys.path:
    sys.path.insert(0, str(RESOURCES))

# tests/cluster starts a multi-node Ray of its own: it runs in a pytest process of its
# own (scripts/test.sh), never beside the one local Ray of this suite
collect_ignore = [] if os.environ.get("AIRFLOWDSL_CLUSTER_TESTS") else ["cluster"]

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray per test run, sized for this 2-core machine.

    Tests that need Ray take this fixture; it is shut down when the run ends.
    """
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=True,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), str(RESOURCES)])}},
        )
        started = True
    try:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
    except Exception:  # pragma: no cover - older Ray
        pass
    yield
    if started:
        ray.shutdown()


@pytest.fixture()
def store_dir(tmp_path: Path) -> Path:
    """A fresh artifact store root for one test."""
    d = tmp_path / "store"
    d.mkdir()
    return d
