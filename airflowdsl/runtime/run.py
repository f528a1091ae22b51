"""Result objects of a pipeline run: :class:`Run` and :class:`StepRun`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflowdsl.errors import RunFailedError

_UNSET: Any = object()


@dataclass
class StepRun:
    """One step of one run.

    ``status``: ``succeeded`` (ran, or served from the cache: see ``cached``),
    ``failed``, ``cancelled`` (Ctrl-C), or ``skipped`` (not run: an upstream failed,
    or ``only=`` left it out).
    """

    name: str
    kind: str = "step"
    status: str = "pending"
    cached: bool = False
    started: float | None = None
    ended: float | None = None
    cache_key: str | None = None
    error: str | None = None
    traceback: str | None = None
    artifacts: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    progress: str = ""  # the latest progress a running step reported (epoch, round, trial)
    #: rows the step recorded by kind (``air.progress.record``): "report", "trial", ...
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def display_status(self) -> str:
        """``cached`` for cache hits, else ``status`` (for tables and graphs)."""
        return "cached" if self.cached and self.status == "succeeded" else self.status


@dataclass
class Run:
    """A finished pipeline run. ``output`` is loaded on first access."""

    id: str
    pipeline: str
    status: str
    params: dict[str, Any]
    steps: dict[str, StepRun]
    store: str
    started: float
    ended: float
    error: str | None = None
    traceback: str | None = None
    _output_loader: Callable[[], Any] | None = field(default=None, repr=False)
    _step_loader: Callable[[str, int | None], Any] | None = field(default=None, repr=False)
    _output: Any = field(default=_UNSET, repr=False)

    @property
    def duration_s(self) -> float:
        return self.ended - self.started

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def output(self) -> Any:
        """The pipeline's returned artifact(s) (a tuple when it returned several).

        Loaded lazily from the run's object refs or from the store; a stored
        Dataset loads as ``ray.data.read_parquet`` (which connects to Ray).
        """
        if self._output is _UNSET:
            self._output = self._output_loader() if self._output_loader else None
        return self._output

    def load(self, step: str, index: int | None = None) -> Any:
        """Load one step's output (``index`` for one of several outputs)."""
        if self._step_loader is None:
            raise RuntimeError("this run has no loader")
        return self._step_loader(step, index)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return {n: s.metrics for n, s in self.steps.items() if s.metrics}

    @property
    def cached_steps(self) -> list[str]:
        return [n for n, s in self.steps.items() if s.cached]

    @property
    def executed_steps(self) -> list[str]:
        return [n for n, s in self.steps.items()
                if s.status in ("succeeded", "failed") and not s.cached]

    def raise_for_status(self) -> Run:
        """Return self if the run succeeded.

        Raises:
            RunFailedError: (a ``RuntimeError``) the run failed; the message holds the
                failing step's error and traceback.
        """
        if self.status != "succeeded":
            raise RunFailedError(f"run {self.id} failed: {self.error}\n{self.traceback or ''}",
                                 run_id=self.id)
        return self

    def __repr__(self) -> str:
        counts = {s: sum(1 for x in self.steps.values() if x.display_status == s)
                  for s in ("succeeded", "cached", "failed", "skipped")}
        body = ", ".join(f"{k}={v}" for k, v in counts.items() if v)
        return f"<Run {self.id} {self.pipeline} {self.status} ({body}) {self.duration_s:.2f}s>"
