"""Tracing a pipeline body: step calls become nodes, their results symbolic handles."""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflowdsl.dsl.bind import bind_call
from airflowdsl.dsl.errors import CompileProblem
from airflowdsl.dsl.handles import MultiOutput, OutputHandle, OutputRef, contains_handle
from airflowdsl.dsl.step import RECORDER, Recorder, StepSpec
from airflowdsl.dsl.types import type_name, value_desc
from airflowdsl.dsl.validate import validate_value


class SubPipeline(Protocol):
    """What inlining a sub-pipeline reads of it (``pipeline.Pipeline`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def signature(self) -> inspect.Signature: ...

    @property
    def param_types(self) -> dict[str, Any]: ...

    @property
    def fn(self) -> Callable[..., Any]: ...


def current() -> Trace | None:
    """The trace of the pipeline body being compiled, if any."""
    recorder = RECORDER.get()
    return recorder if isinstance(recorder, Trace) else None


@dataclass
class NodeRecord:
    name: str
    spec: StepSpec
    params: dict[str, Any]
    inputs: dict[str, tuple[str, int | None]]


@dataclass
class Trace:
    """The nodes and problems recorded while one pipeline body runs symbolically."""

    pipeline: str
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    problems: list[CompileProblem] = field(default_factory=list)
    prefix: str = ""
    _next: dict[str, int] = field(default_factory=dict)
    _scopes: set[str] = field(default_factory=set)

    def activate(self) -> contextvars.Token[Recorder | None]:
        return RECORDER.set(self)

    @staticmethod
    def deactivate(token: contextvars.Token[Recorder | None]) -> None:
        RECORDER.reset(token)

    def problem(self, kind: str, message: str, *, step: str | None = None,
                parameter: str | None = None, expected: str | None = None,
                given: str | None = None) -> None:
        self.problems.append(CompileProblem(kind=kind, pipeline=self.pipeline, message=message,
                                            step=step, parameter=parameter,
                                            expected=expected, given=given))

    def _unique(self, base: str, taken: Any) -> str:
        if base not in taken:
            return base
        n = self._next.get(base, 2)
        while f"{base}_{n}" in taken:
            n += 1
        self._next[base] = n + 1
        return f"{base}_{n}"

    def record_step(self, spec: StepSpec, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> OutputHandle | MultiOutput:
        base = self.prefix + spec.name
        if spec.explicit_name and base in self.nodes:
            self.problem("duplicate_name", f"step name {base!r} is used twice; names given "
                         "with with_options(name=...) must be unique", step=base)
        name = self._unique(base, self.nodes)

        def report(kind: str, parameter: str | None, message: str, **kw: Any) -> None:
            self.problem(kind, message, step=name, parameter=parameter, **kw)

        params, inputs = bind_call(spec, args, kwargs, owner=self, report=report)
        self.nodes[name] = NodeRecord(name=name, spec=spec, params=params, inputs=inputs)
        if spec.multi_output:
            return MultiOutput(name, [OutputHandle(self, OutputRef(name, i), t)
                                      for i, t in enumerate(spec.output_types)])
        return OutputHandle(self, OutputRef(name, None), spec.output_types[0])

    def call_pipeline(self, pipeline: SubPipeline, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        """Inline a sub-pipeline: its steps get the prefix ``<name>.``."""
        scope = self._unique(self.prefix + pipeline.name, self._scopes)
        self._scopes.add(scope)
        try:
            bound = pipeline.signature.bind(*args, **kwargs)
        except TypeError as err:
            self.problem("bad_usage", f"sub-pipeline call: {err}", step=scope)
            return None
        bound.apply_defaults()
        values = dict(bound.arguments)
        for key, value in values.items():
            ann = pipeline.param_types.get(key, Any)
            if isinstance(value, OutputHandle) or contains_handle(value):
                continue
            coerced, why = validate_value(ann, value)
            if why is not None:
                self.problem("invalid_value", f"expected {type_name(ann)}, got "
                             f"{value_desc(value)} — pydantic: {why}", step=scope,
                             parameter=key, expected=type_name(ann), given=value_desc(value))
            values[key] = coerced
        outer, self.prefix = self.prefix, scope + "."
        try:
            return pipeline.fn(**values)
        finally:
            self.prefix = outer


__all__ = ["NodeRecord", "SubPipeline", "Trace", "current"]
