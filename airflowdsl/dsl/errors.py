"""Compile errors: every problem of one compile, collected and reported together."""

from __future__ import annotations

from dataclasses import dataclass


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


class CompileError(ValueError):
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


__all__ = ["CompileError", "CompileProblem"]
