"""Every public exception of airflowdsl, under one base: ``except af.errors.AirflowDSLError``.

Each class also keeps the built-in base it had before (``CompileError`` is still a
``ValueError``, ``TrainingFailedError`` a ``RuntimeError``, ...), and each stays importable
from the module that raises it (``airflowdsl.dsl.errors``, ``airflowdsl.train.trainer``, ...).

This module sits below every layer (docs/ARCHITECTURE.md): it imports nothing of airflowdsl,
so that any layer may raise these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class AirflowDSLError(Exception):
    """Base of every exception airflowdsl raises on purpose."""


@dataclass(frozen=True)
class CompileProblem:
    """One problem found while compiling a pipeline.

    ``kind`` is one of: ``type_mismatch``, ``invalid_value``, ``missing_input``,
    ``unknown_keyword``, ``too_many_positional``, ``artifact_required``, ``cycle``,
    ``invalid_pipeline_param``, ``bad_usage``, ``duplicate_name``, ``unsupported``.
    """

    kind: str
    pipeline: str
    message: str
    step: str | None = None
    parameter: str | None = None
    expected: str | None = None
    given: str | None = None

    @property
    def where(self) -> str:
        parts = [f"pipeline {self.pipeline!r}"]
        if self.step is not None:
            parts.append(f"step {self.step!r}")
        if self.parameter is not None:
            parts.append(f"parameter {self.parameter!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class CompileError(AirflowDSLError, ValueError):
    """A pipeline failed to compile; ``.errors`` lists every problem found (nothing ran)."""

    def __init__(self, pipeline: str, errors: list[CompileProblem]) -> None:
        self.pipeline = pipeline
        self.errors = list(errors)
        super().__init__(self._format())

    def _format(self) -> str:
        if len(self.errors) == 1:
            return str(self.errors[0])
        lines = [f"{len(self.errors)} compile errors in pipeline {self.pipeline!r}:"]
        lines.extend(f"  - {e}" for e in self.errors)
        return "\n".join(lines)


class HandleUsageError(AirflowDSLError, TypeError):
    """A symbolic output was used like a real value inside a pipeline body."""


class StepFailed(AirflowDSLError):
    """A step's own code raised; carries the user's traceback as text."""

    def __init__(self, step: str, error: str, user_traceback: str) -> None:
        super().__init__(step, error, user_traceback)
        self.step, self.error, self.user_traceback = step, error, user_traceback

    def __str__(self) -> str:
        return f"step {self.step!r} failed: {self.error}"


class GroupFailed(StepFailed):
    """A step of a group of steps sharing one Ray task failed (``runtime.fusion``);
    ``done`` maps the group's steps that finished to their packed summaries, so the
    driver reports each step as it ended."""

    def __init__(self, step: str, error: str, user_traceback: str,
                 done: dict[str, bytes]) -> None:
        super().__init__(step, error, user_traceback)
        self.args = (step, error, user_traceback, done)  # pickled with ``done``
        self.done = done


class RunFailedError(AirflowDSLError, RuntimeError):
    """``Run.raise_for_status()`` on a run that did not succeed; ``.run_id`` names it."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class CorruptArtifact(AirflowDSLError, RuntimeError):
    """A stored artifact failed verification."""


class StoreError(AirflowDSLError, ValueError):
    """An artifact store that cannot be used as given (a local directory on a multi-node
    Ray cluster, ...); the message says what to change (an object-store URI, or a
    ``file://`` URI / ``AIRFLOWDSL_STORE_SHARED=1`` for a mount every node shares)."""


class TrainingFailedError(AirflowDSLError, RuntimeError):
    """A fit failed for good; the message carries the failing rank and the user's traceback.

    ``result`` is the fit's ``airflowdsl.air.Result`` so far, when there is one (typed
    loosely here: this module imports nothing of airflowdsl).
    """

    def __init__(self, message: str, *, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class Keras3ModelError(AirflowDSLError, TypeError):
    """A Keras 3 model was used where only tf-keras works (``model.fit`` under the strategy)."""


class LoadError(AirflowDSLError):
    """A CLI argument that cannot be used; the message is shown as is."""


class ResourceError(AirflowDSLError, RuntimeError):
    """A resource request that can never be placed on the cluster, or that waited past the
    limit (``AIRFLOWDSL_PENDING_TIMEOUT``); the message names what waits, what it asks
    for and what the cluster has free."""


class StalledError(ResourceError):
    """Ray work started by a step waited for resources past the limit with no progress
    (the driver's stall watchdog stopped the step)."""


class WarmDriverError(AirflowDSLError, RuntimeError):
    """The warm Ray head's driver process (``runtime.warmdriver``) did not answer, or
    exited before the run it drove ended."""


__all__ = [
    "AirflowDSLError",
    "CompileError",
    "CompileProblem",
    "CorruptArtifact",
    "HandleUsageError",
    "Keras3ModelError",
    "LoadError",
    "ResourceError",
    "RunFailedError",
    "StalledError",
    "WarmDriverError",
    "StepFailed",
    "StoreError",
    "TrainingFailedError",
]
