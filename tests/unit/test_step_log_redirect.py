"""A step's stdout/stderr (file descriptors 1 and 2) go to its log file while it runs and
come back afterwards, also for a step context inside another one (``tasks.step_context``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from airflowdsl.air.progress import StepContext
from airflowdsl.runtime.tasks import step_context


def _where(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def test_output_goes_to_the_log_and_comes_back(tmp_path: Path) -> None:
    sys.stdout.flush()
    before = (_where(1), _where(2))
    outer, inner = tmp_path / "logs" / "outer.log", tmp_path / "logs" / "inner.log"
    for _ in range(2):  # the second time the saved descriptors are reused
        with step_context(StepContext("r", "outer", str(outer))):
            os.write(1, b"o1\n")
            with step_context(StepContext("r", "inner", str(inner))):
                os.write(1, b"i1\n")
                os.write(2, b"i2\n")
            os.write(2, b"o2\n")
        assert (_where(1), _where(2)) == before
    assert outer.read_bytes() == b"o1\no2\n" * 2
    assert inner.read_bytes() == b"i1\ni2\n" * 2
