"""What the runtime reads of a compiled pipeline: small typed protocols, no DSL import.

The DSL layer (``dsl.compile.CompiledPipeline``, ``dsl.step.StepSpec``) sits above the
runtime and satisfies these structurally; mypy checks it where the DSL hands a pipeline
to ``runtime.executor.execute``. Every member is read-only here: the runtime never
changes a spec or the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: a worker importing the runtime skips networkx
    import networkx as nx

#: one output of a node: ``(node, index)``; index None means the whole single output
OutputRefLike = tuple[str, int | None]
#: what a pipeline returns: nothing, one output, or several
PipelineOutputs = OutputRefLike | tuple[OutputRefLike, ...] | None


class StepLike(Protocol):
    """A step's spec as the runtime reads it (``dsl.step.StepSpec`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def fn(self) -> Callable[..., Any]: ...

    @property
    def output_types(self) -> tuple[Any, ...]: ...

    @property
    def multi_output(self) -> bool: ...

    @property
    def num_cpus(self) -> float | None: ...

    @property
    def num_gpus(self) -> float | None: ...

    @property
    def memory(self) -> int | None: ...

    @property
    def resources(self) -> Mapping[str, float] | None: ...

    @property
    def retries(self) -> int: ...

    @property
    def cache(self) -> bool: ...

    @property
    def version(self) -> str | None: ...

    @property
    def cache_ignore(self) -> tuple[str, ...]: ...

    @property
    def cache_key(self) -> tuple[str, ...]: ...

    @property
    def watch(self) -> tuple[str, ...]: ...

    @property
    def cache_ttl(self) -> float | None: ...


class NodeLike(Protocol):
    """One node of the compiled DAG (``dsl.compile.StepNode`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> StepLike: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def inputs(self) -> Mapping[str, OutputRefLike]: ...


class CompiledGraph(Protocol):
    """A compiled pipeline as the runtime reads it (``dsl.compile.CompiledPipeline``).

    ``graph`` is used for its topology only (successors, ancestors, descendants); what a
    node holds is read through ``node(name)``.
    """

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def graph(self) -> nx.DiGraph: ...

    @property
    def order(self) -> Sequence[str]: ...

    @property
    def outputs(self) -> PipelineOutputs: ...

    def node(self, name: str) -> NodeLike: ...


__all__ = ["CompiledGraph", "NodeLike", "OutputRefLike", "PipelineOutputs", "StepLike"]
