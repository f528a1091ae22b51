"""A run's DAG as a small JSON file beside its logs: ``<root>/runs/<run>/dag.json``.

Written by the executor when a run starts (local stores only), so a reader that has
no pipeline file (``airflowdsl ui``) can draw the graph of any recorded run, while it
runs too. It holds what the compiled graph says and the history does not: nodes (name,
kind, constant params, inputs with their types, output types) and edges (upstream,
downstream, parameter, artifact type). Status, timings and keys stay in the history.
A failed write never fails the run (the reader falls back to the history's steps).
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflowdsl.fileio import atomic_write_bytes

FILENAME = "dag.json"
VERSION = 1


def run_graph_path(root: str, run_id: str) -> str | None:
    """``<root>/runs/<run_id>/dag.json`` for a local store (None for an object store)."""
    if "://" in root and not root.startswith("file://"):
        return None
    return os.path.join(root.removeprefix("file://"), "runs", run_id, FILENAME)


def _type_name(t: Any) -> str:
    if isinstance(t, type):
        return t.__name__
    return str(t).replace("typing.", "")


def _value(v: Any) -> Any:
    try:
        json.dumps(v, allow_nan=False)
        return v
    except (TypeError, ValueError):
        text = repr(v)
        return text if len(text) <= 200 else text[:197] + "..."


def graph_dict(compiled: Any) -> dict[str, Any]:
    """The JSON form of ``compiled``'s DAG (a ``CompiledPipeline``, read duck-typed)."""
    g = compiled.graph
    nodes = []
    for name in compiled.order:
        data = g.nodes[name]
        nodes.append({
            "name": name, "kind": data.get("kind", "step"),
            "params": {k: _value(v) for k, v in (data.get("params") or {}).items()},
            "inputs": {k: [up, idx] for k, (up, idx) in (data.get("inputs") or {}).items()},
            "input_types": {k: _type_name(t) for k, t in (data.get("input_types") or {}).items()
                            if k in (data.get("inputs") or {})},
            "output_types": [_type_name(t) for t in (data.get("output_types") or ())],
        })
    edges = []
    for u, v, d in g.edges(data=True):
        param = d.get("param", "")
        if isinstance(param, (tuple, list)):
            param = ", ".join(map(str, param))
        edges.append({"source": u, "target": v, "param": param, "type": str(d.get("type", ""))})
    return {"version": VERSION, "pipeline": compiled.name, "nodes": nodes, "edges": edges}


def write_run_graph(root: str, run_id: str, compiled: Any) -> str | None:
    """Write ``dag.json`` of ``run_id``; the path, or None (object store, or it failed)."""
    path = run_graph_path(root, run_id)
    if path is None:
        return None
    try:
        atomic_write_bytes(path, json.dumps(graph_dict(compiled)).encode(), make_parents=True)
    except Exception:  # noqa: BLE001 - a picture of the run must never fail it
        return None
    return path


def read_run_graph(root: str, run_id: str) -> dict[str, Any] | None:
    """The ``dag.json`` of ``run_id``, or None (missing, unreadable, not ours)."""
    path = run_graph_path(root, run_id)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    return data


__all__ = ["FILENAME", "graph_dict", "read_run_graph", "run_graph_path", "write_run_graph"]
