"""Runtime: run compiled pipelines on Ray with a content-addressed cache and run history.

Importing this package is cheap: Ray is imported only when a step must run.
"""

from __future__ import annotations

from airflowdsl.runtime.run import Run, StepRun

__all__ = ["Run", "StepRun", "execute"]


def execute(compiled, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`airflowdsl.runtime.executor.execute`."""
    from airflowdsl.runtime.executor import execute as _execute

    return _execute(compiled, **kwargs)
