"""A layered left-to-right layout of a run's DAG, drawn as SVG by the run page.

Each node goes in the column of its longest path from a source; within a column, nodes
are ordered by the mean row of their upstreams (a few barycenter sweeps), which keeps
pipeline graphs (chains, fans, diamonds) free of most crossings. Pure Python: no
graphviz binary is needed to look at a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

NODE_W, NODE_H = 152, 46
COL_GAP, ROW_GAP, MARGIN = 44, 22, 12


@dataclass
class Box:
    name: str
    x: float
    y: float
    w: float = NODE_W
    h: float = NODE_H


@dataclass
class Layout:
    boxes: dict[str, Box]
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (source, target, path d)
    width: float = 0.0
    height: float = 0.0


def _columns(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    preds: dict[str, list[str]] = {n: [] for n in names}
    for u, v in edges:
        if u in preds and v in preds:
            preds[v].append(u)
    col: dict[str, int] = {}

    def depth(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n not in col:
            col[n] = 0 if n in seen else max(
                (depth(p, seen | {n}) + 1 for p in preds[n]), default=0)
        return col[n]

    for n in names:
        depth(n)
    return col


def layout(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> Layout:
    """Positions of ``names`` (in a topological order) and SVG paths of ``edges``."""
    col = _columns(names, edges)
    ncols = max(col.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(ncols)]
    for n in names:
        rows[col[n]].append(n)
    preds: dict[str, list[str]] = {n: [] for n in names}
    succs: dict[str, list[str]] = {n: [] for n in names}
    for u, v in edges:
        if u in preds and v in preds:
            preds[v].append(u)
            succs[u].append(v)
    pos = {n: i for r in rows for i, n in enumerate(r)}
    for sweep in range(4):  # barycenter: forward on upstreams, backward on downstreams
        order = range(1, ncols) if sweep % 2 == 0 else range(ncols - 2, -1, -1)
        for c in order:
            near = preds if sweep % 2 == 0 else succs

            def bary(n: str, near: dict[str, list[str]] = near) -> float:
                others = near[n]
                return sum(pos[o] for o in others) / len(others) if others else pos[n]

            rows[c].sort(key=bary)
            pos.update({n: i for i, n in enumerate(rows[c])})
    tallest = max((len(r) for r in rows), default=0)
    height = 2 * MARGIN + tallest * NODE_H + max(tallest - 1, 0) * ROW_GAP
    boxes: dict[str, Box] = {}
    for c, r in enumerate(rows):
        used = len(r) * NODE_H + max(len(r) - 1, 0) * ROW_GAP
        top = (height - used) / 2
        for i, n in enumerate(r):
            boxes[n] = Box(n, MARGIN + c * (NODE_W + COL_GAP), top + i * (NODE_H + ROW_GAP))
    paths = []
    for u, v in edges:
        if u not in boxes or v not in boxes:
            continue
        a, b = boxes[u], boxes[v]
        x1, y1 = a.x + a.w, a.y + a.h / 2
        x2, y2 = b.x, b.y + b.h / 2
        bend = max((x2 - x1) / 2, 24)
        paths.append((u, v, f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} "
                            f"{x2 - bend:.1f},{y2:.1f} {x2 - 6:.1f},{y2:.1f}"))
    width = 2 * MARGIN + ncols * NODE_W + max(ncols - 1, 0) * COL_GAP
    return Layout(boxes, paths, width, height)


__all__ = ["Box", "Layout", "layout"]
