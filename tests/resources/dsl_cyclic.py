"""A cycle: impossible through tracing, so built by hand with ``add_node`` + ``from_graph``."""

from __future__ import annotations

import networkx as nx

import airflowdsl as af
from airflowdsl.dsl.compile import add_node


@af.preprocess
def a(x: af.Dataset) -> af.Dataset: ...


@af.preprocess
def b(x: af.Dataset) -> af.Dataset: ...


@af.preprocess
def c(x: af.Dataset) -> af.Dataset: ...


def build() -> af.CompiledPipeline:
    g = nx.DiGraph()
    add_node(g, "a", a.spec, inputs={"x": ("c", None)})
    add_node(g, "b", b.spec, inputs={"x": ("a", None)})
    add_node(g, "c", c.spec, inputs={"x": ("b", None)})
    return af.CompiledPipeline.from_graph("cyclic", g)
