"""``@af.pipeline``: a function whose body wires steps; traced once per compile."""

from __future__ import annotations

import functools
import gc
import inspect
from collections.abc import Callable
from typing import Any, overload

import networkx as nx

from airflowdsl.dsl import trace as _trace
from airflowdsl.dsl.compile import CompiledPipeline, add_input_edges, add_node, check_graph
from airflowdsl.dsl.errors import CompileError, CompileProblem
from airflowdsl.dsl.handles import HandleUsageError, MultiOutput, OutputHandle, OutputRef
from airflowdsl.dsl.params import params_model, validate_params
from airflowdsl.dsl.step import resolve_hints

RESERVED = ("store", "force", "from_step", "only")


class Pipeline:
    """A decorated pipeline function. ``compile(**params)`` traces it into a
    ``CompiledPipeline``; ``run(**params)`` compiles and executes it. Called inside
    another pipeline it is inlined (steps prefixed ``<name>.``); called anywhere else it
    runs its body eagerly as plain Python (steps call their functions)."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        bad = [p for p in self.signature.parameters if p in RESERVED]
        if bad:
            raise TypeError(f"pipeline {self.name!r}: parameter names {bad} are reserved "
                            f"by Pipeline.run ({', '.join(RESERVED)})")
        hints = resolve_hints(fn)
        self.param_types = {p: hints.get(p, Any) for p in self.signature.parameters}
        self._model = params_model(self.name, self.signature, self.param_types)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        current = _trace.current()
        if current is None:
            return self.fn(*args, **kwargs)
        return current.call_pipeline(self, args, kwargs)

    def with_options(self, *, name: str) -> Pipeline:
        """A copy under another name (its steps' prefix when used as a sub-pipeline)."""
        return Pipeline(self.fn, name=name)

    def compile(self, **params: Any) -> CompiledPipeline:
        """Validate ``params``, trace the body, check the DAG. Runs no step.

        Args:
            **params: the pipeline's parameters (validated and coerced by pydantic).

        Returns:
            The typed, checked ``CompiledPipeline``.

        Raises:
            CompileError: every problem found (bad parameters, type mismatches on edges,
                missing or unknown inputs, plain values for artifacts, cycles), at once.
        """
        values, problems = validate_params(self.name, self._model, self.signature,
                                           self.param_types, params)
        if problems:
            raise CompileError(self.name, problems)
        gc_was_enabled = gc.isenabled()
        gc.disable()  # tracing allocates many small objects: no full collections meanwhile
        try:
            return self._trace_and_build(values)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _trace_and_build(self, values: dict[str, Any]) -> CompiledPipeline:
        tr = _trace.Trace(self.name)
        token = tr.activate()
        try:
            result = self.fn(**values)
        except HandleUsageError as err:
            tr.problem("bad_usage", str(err))
            result = None
        finally:
            tr.deactivate(token)
        outputs = _outputs(tr, result)
        graph = nx.DiGraph(name=self.name)
        for rec in tr.nodes.values():
            add_node(graph, rec.name, rec.spec, params=rec.params, inputs=rec.inputs)
            add_input_edges(graph, rec.name)
        # edge types were checked while tracing; this finds the order (and any cycle)
        order, graph_problems = check_graph(self.name, graph, types=False)
        tr.problems.extend(graph_problems)
        if tr.problems:
            raise CompileError(self.name, tr.problems)
        return CompiledPipeline(self.name, values, graph, outputs, order)

    def run(self, *, store: Any = None, force: bool = False, from_step: str | None = None,
            only: Any = None, pending_timeout: float | None = 60.0, **params: Any) -> Any:
        """Compile with ``params`` and execute on Ray; returns the finished ``Run``.

        Args:
            store: root or URI of the artifact store (default ``.airflowdsl/``).
            force: run every step, ignoring the cache.
            from_step: rerun this step and everything downstream of it.
            only: run only these steps (their inputs come from the store).
            pending_timeout: seconds nested Ray work may wait for resources with no
                progress (None: no limit); see ``runtime.executor.execute``.
            **params: the pipeline's parameters.

        Raises:
            CompileError: as ``compile``; nothing runs.
            ResourceError: a step asks for more than the cluster can ever give.
        """
        compiled = self.compile(**params)
        return compiled.run(store=store, force=force, from_step=from_step, only=only,
                            pending_timeout=pending_timeout)

    def __repr__(self) -> str:
        return f"<pipeline {self.name!r}>"


def _outputs(tr: _trace.Trace, result: Any) -> OutputRef | tuple[OutputRef, ...] | None:
    if result is None:
        return None
    if isinstance(result, OutputHandle):
        return result.ref
    if isinstance(result, (tuple, list)):  # a MultiOutput inside is flattened
        flat = [h for r in result for h in (r if isinstance(r, MultiOutput) else (r,))]
        if all(isinstance(h, OutputHandle) for h in flat):
            return tuple(h.ref for h in flat)
    given = "a tuple holding non-step values" if isinstance(result, (tuple, list)) else \
        type(result).__name__
    tr.problems.append(CompileProblem(
        "bad_usage", tr.pipeline, "a pipeline must return step outputs (one, a tuple of "
        f"them) or None, got {given}", given=given))
    return None


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(fn: None = None, /, *, name: str | None = None) -> Callable[
    [Callable[..., Any]], Pipeline]: ...


def pipeline(fn: Callable[..., Any] | None = None, /, *,
             name: str | None = None) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """``@af.pipeline`` or ``@af.pipeline(name="...")``."""
    if fn is not None:
        return Pipeline(fn, name=name)
    return lambda f: Pipeline(f, name=name)


__all__ = ["Pipeline", "pipeline"]
