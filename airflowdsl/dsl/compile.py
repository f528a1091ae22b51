"""The compiled, checked DAG handed to the runtime and the renderer.

Contract (docs/ARCHITECTURE.md): node key = unique step name; node attrs ``spec``,
``kind``, ``params``, ``inputs``, ``input_types``, ``output_types``; edge attrs
``bindings``, ``param`` (tuple of parameter names), ``type``; ``outputs``, ``order``,
``node(name)`` (a typed :class:`StepNode`), ``run(**kw)``. The runtime reads it through
``runtime.contracts.CompiledGraph``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from airflowdsl.dsl.errors import CompileError, CompileProblem
from airflowdsl.dsl.handles import OutputRef
from airflowdsl.dsl.step import StepSpec
from airflowdsl.dsl.types import is_assignable, type_name

# imported with the DSL, as a library imports what its calls need: a cached run() in a
# new process then plans at once (the executor path imports no Ray, pyarrow or pandas;
# tests/unit/test_lazy_imports.py)
from airflowdsl.runtime.executor import execute

Outputs = OutputRef | tuple[OutputRef, ...] | None


@dataclass(frozen=True)
class StepNode:
    """One node of a compiled pipeline, typed (``runtime.contracts.NodeLike``): the
    unique step name, its spec, constant argument values by parameter name, and inputs
    as parameter name -> (upstream node, output index; None = the whole output)."""

    name: str
    spec: StepSpec
    params: Mapping[str, Any]
    inputs: Mapping[str, tuple[str, int | None]]


def add_node(graph: nx.DiGraph, name: str, spec: StepSpec, *, params: dict[str, Any] | None = None,
             inputs: dict[str, tuple[str, int | None]] | None = None) -> None:
    """Add one step node with the contract's attributes (edges: see ``add_input_edges``)."""
    graph.add_node(name, spec=spec, kind=spec.kind, params=dict(params or {}),
                   inputs=dict(inputs or {}), input_types=spec.input_types,
                   output_types=spec.output_types)


def output_type(spec: StepSpec, index: int | None) -> Any:
    return spec.output_types[index or 0]


def add_input_edges(graph: nx.DiGraph, name: str) -> None:
    """One edge per upstream node, carrying every (param, output index) binding."""
    groups: dict[str, list[tuple[str, int | None]]] = {}
    for param, (up, index) in graph.nodes[name]["inputs"].items():
        groups.setdefault(up, []).append((param, index))
    for up, bindings in groups.items():
        up_spec = graph.nodes[up].get("spec") if up in graph else None
        if up_spec is not None:
            types = dict.fromkeys(type_name(output_type(up_spec, i)) for _, i in bindings)
            label = ", ".join(types)
        else:
            label = "?"
        graph.add_edge(up, name, bindings=bindings, param=tuple(p for p, _ in bindings),
                       type=label)


def check_graph(pipeline: str, graph: nx.DiGraph, *, types: bool = True
                ) -> tuple[list[str], list[CompileProblem]]:
    """(topological order, problems): unknown upstream steps, edge types, cycles."""
    problems: list[CompileProblem] = []
    for name, data in graph.nodes(data=True) if types else ():
        if "spec" not in data:
            problems.append(CompileProblem("missing_input", pipeline,
                                           "unknown step (no spec)", step=name))
            continue
        for param, (up, index) in data.get("inputs", {}).items():
            up_spec = graph.nodes[up].get("spec") if up in graph.nodes else None
            if up_spec is None:
                continue
            src, dst = output_type(up_spec, index), data["spec"].input_types.get(param, Any)
            if not is_assignable(src, dst):
                msg = f"expected {type_name(dst)}, got {type_name(src)} from step {up!r}"
                problems.append(CompileProblem("type_mismatch", pipeline, msg, step=name,
                                               parameter=param, expected=type_name(dst),
                                               given=type_name(src)))
    try:
        order = list(nx.topological_sort(graph))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(graph)
        path = " -> ".join([u for u, _v in cycle] + [cycle[0][0]])
        problems.append(CompileProblem("cycle", pipeline, f"cycle: {path}",
                                       step=cycle[0][0], given=path))
        order = []
    return order, problems


class CompiledPipeline:
    """A typed, checked DAG of steps; ``run()`` hands it to the runtime."""

    def __init__(self, name: str, params: dict[str, Any], graph: nx.DiGraph,
                 outputs: Outputs, order: list[str]) -> None:
        self.name = name
        self.params = params
        self.graph = graph
        self.outputs = outputs
        self.order = order

    @classmethod
    def from_graph(cls, name: str, graph: nx.DiGraph, *, params: dict[str, Any] | None = None,
                   outputs: Outputs = None) -> CompiledPipeline:
        """Check a hand-built graph and wrap it.

        Args:
            name: the pipeline's name.
            graph: nodes made with ``add_node`` (edges are derived from each node's
                ``inputs``; edges already there are relabelled).
            params: the pipeline parameters to record.
            outputs: what the pipeline returns (``OutputRef``s).

        Raises:
            CompileError: unknown upstream steps, edge type mismatches, cycles (all listed).
        """
        g = graph.copy()
        for node in list(g.nodes):
            if "spec" in g.nodes[node]:
                data = g.nodes[node]
                add_node(g, node, data["spec"], params=data.get("params"),
                         inputs=data.get("inputs"))
        for u, v in list(g.edges):
            g.edges[u, v].update(bindings=[], param=(), type="")
        for node in list(g.nodes):
            if "spec" in g.nodes[node]:
                add_input_edges(g, node)
        order, problems = check_graph(name, g)
        if problems:
            raise CompileError(name, problems)
        return cls(name, dict(params or {}), g, outputs, order)

    def node(self, name: str) -> StepNode:
        """The typed record of step ``name`` (``KeyError`` if there is none)."""
        data = self.graph.nodes[name]
        return StepNode(name, data["spec"], data.get("params") or {}, data.get("inputs") or {})

    @property
    def steps(self) -> list[str]:
        """Step names in topological order."""
        return list(self.order)

    def run(self, **kwargs: Any) -> Any:
        """Execute on Ray with caching; returns the finished ``runtime.run.Run``.

        Args:
            **kwargs: passed to ``runtime.executor.execute``: ``store=`` (root or URI of
                the artifact store), ``force=`` (ignore the cache), ``from_step=``,
                ``only=``, ``pending_timeout=``, ...

        Raises:
            ResourceError: a step asks for more than the cluster can ever give. A step's
                own failure does not raise: the ``Run`` is ``failed`` (see
                ``Run.raise_for_status``).
        """
        return execute(self, **kwargs)

    def render(self, path: str | os.PathLike[str], *,
               status: dict[str, str] | None = None) -> Path:
        """Draw the DAG; the suffix picks the format (.svg .png .pdf .dot .mmd).

        Raises:
            ValueError: an unknown suffix (see ``dsl.render.render``).
        """
        from airflowdsl.dsl.render import render

        return render(self, path, status=status)

    def __repr__(self) -> str:
        return (f"<CompiledPipeline {self.name!r}: {self.graph.number_of_nodes()} steps, "
                f"{self.graph.number_of_edges()} edges>")


__all__ = ["CompiledPipeline", "StepNode", "add_input_edges", "add_node", "check_graph"]
