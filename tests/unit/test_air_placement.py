"""Strict placement strategies checked against the cluster's nodes before any wait."""

from __future__ import annotations

from airflowdsl.air.resources import strict_placement_problem

HEAD = {"memory": 8e9, "head": 1.0}  # no CPUs
NODE_A = {"CPU": 1.0, "memory": 8e9, "node_a": 1.0}
NODE_B = {"CPU": 1.0, "memory": 8e9, "node_b": 1.0}
NODES = [HEAD, NODE_A, NODE_B]


def test_strict_spread_needs_one_able_node_per_worker() -> None:
    assert strict_placement_problem({"CPU": 0.5}, 2, "STRICT_SPREAD", NODES) is None
    problem = strict_placement_problem({"CPU": 0.5}, 3, "STRICT_SPREAD", NODES)
    assert problem is not None and "only 2 node(s)" in problem and "0.5 CPU" in problem
    # a custom resource only one node has
    assert strict_placement_problem({"CPU": 0.5, "node_a": 0.1}, 2, "STRICT_SPREAD", NODES)


def test_strict_pack_needs_one_node_holding_all() -> None:
    assert strict_placement_problem({"CPU": 0.5}, 2, "STRICT_PACK", NODES) is None
    problem = strict_placement_problem({"CPU": 1.0}, 2, "STRICT_PACK", NODES)
    assert problem is not None and "no node" in problem


def test_soft_strategies_are_never_refused_here() -> None:
    for strategy in ("PACK", "SPREAD"):
        assert strict_placement_problem({"CPU": 5.0}, 9, strategy, NODES) is None
