"""Drawing a compiled pipeline: Graphviz (.svg .png .pdf .dot) or Mermaid (.mmd).

Nodes are shaped and coloured by step kind and labelled ``name`` + ``kind``; edges are
labelled with the artifact type. ``status`` ({step: status}) recolours nodes by run
status. Files are written atomically (``airflowdsl.fileio``).

Part of the DSL layer; it reads only ``name``, ``order`` and ``graph`` of what it draws
(the ``Drawable`` protocol, which ``CompiledPipeline`` satisfies), so it does not import
the compiler and the compiler imports it only when ``render()`` is called (graphviz stays
out of ``import airflowdsl``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import graphviz

from airflowdsl.fileio import atomic_write_bytes

if TYPE_CHECKING:
    import networkx as nx


class Drawable(Protocol):
    """What the renderer reads: a name, a topological order and the step graph."""

    @property
    def name(self) -> str: ...

    @property
    def order(self) -> list[str]: ...

    @property
    def graph(self) -> nx.DiGraph: ...

# kind -> (graphviz shape, fill colour, mermaid open, mermaid close)
KIND_STYLE: dict[str, tuple[str, str, str, str]] = {
    "ingest": ("cylinder", "#cfe2ff", "[(", ")]"),
    "preprocess": ("box", "#d1e7dd", "(", ")"),
    "train": ("box3d", "#ffe5b4", "[[", "]]"),
    "tune": ("hexagon", "#fff3b0", "{{", "}}"),
    "predict": ("parallelogram", "#e8d5f5", "[/", "/]"),
    "step": ("ellipse", "#e9ecef", "[", "]"),
}
STATUS_COLOR: dict[str, str] = {
    "succeeded": "#7bd389", "success": "#7bd389", "done": "#7bd389",
    "cached": "#a0c4ff", "running": "#ffd166", "failed": "#ef476f",
    "skipped": "#dee2e6", "pending": "#f8f9fa", "cancelled": "#adb5bd",
}
GRAPHVIZ_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
TEXT_FORMATS = (".dot", ".gv", ".mmd")


def _style(kind: str) -> tuple[str, str, str, str]:
    return KIND_STYLE.get(kind, KIND_STYLE["step"])


def to_dot(compiled: Drawable, *, status: dict[str, str] | None = None) -> str:
    """The DAG as Graphviz DOT source."""
    dot = graphviz.Digraph(compiled.name, graph_attr={"rankdir": "TB", "label": compiled.name,
                                                       "labelloc": "t", "fontname": "Helvetica"},
                           node_attr={"style": "filled", "fontname": "Helvetica"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    for name in compiled.order or list(compiled.graph.nodes):
        kind = compiled.graph.nodes[name].get("kind", "step")
        shape, fill, _o, _c = _style(kind)
        label = f"{name}\\n«{kind}»"
        st = (status or {}).get(name)
        if st is not None:
            fill = STATUS_COLOR.get(st.lower(), fill)
            label += f"\\n[{st}]"
        style = "rounded,filled" if kind == "preprocess" else "filled"
        dot.node(name, label=label, shape=shape, fillcolor=fill, style=style)
    for up, down, data in compiled.graph.edges(data=True):
        dot.edge(up, down, label=data.get("type", ""), tooltip=", ".join(data.get("param", ())))
    return dot.source


def _mm_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(compiled: Drawable, *, status: dict[str, str] | None = None) -> str:
    """The DAG as a Mermaid flowchart."""
    ids: dict[str, str] = {}
    lines = ["---", f"title: {_mm_text(compiled.name)}", "---", "flowchart TD"]
    classes: dict[str, list[str]] = {}
    for i, name in enumerate(compiled.order or list(compiled.graph.nodes)):
        ids[name] = f"n{i}"
        kind = compiled.graph.nodes[name].get("kind", "step")
        _shape, _fill, op, cl = _style(kind)
        label = f"{_mm_text(name)}<br/><i>{kind}</i>"
        st = (status or {}).get(name)
        cls = kind if kind in KIND_STYLE else "step"
        if st is not None:
            label += f"<br/>[{_mm_text(st)}]"
            if st.lower() in STATUS_COLOR:
                cls = f"st_{st.lower()}"
        classes.setdefault(cls, []).append(ids[name])
        lines.append(f'    {ids[name]}{op}"{label}"{cl}')
    for up, down, data in compiled.graph.edges(data=True):
        label = data.get("type", "")
        arrow = f'-->|"{_mm_text(label)}"|' if label else "-->"
        lines.append(f"    {ids[up]} {arrow} {ids[down]}")
    for kind, (_s, fill, _o, _c) in KIND_STYLE.items():
        lines.append(f"    classDef {kind} fill:{fill},stroke:#555")
    for st, color in STATUS_COLOR.items():
        lines.append(f"    classDef st_{st} fill:{color},stroke:#333")
    for cls, members in classes.items():
        lines.append(f"    class {','.join(members)} {cls}")
    return "\n".join(lines) + "\n"


def render(compiled: Drawable, path: str | os.PathLike[str], *,
           status: dict[str, str] | None = None) -> Path:
    """Write the drawing of ``compiled``; the suffix of ``path`` picks the format.

    Args:
        compiled: the pipeline to draw (a ``CompiledPipeline``, or anything ``Drawable``).
        path: the file to write: ``.svg``, ``.png``, ``.pdf`` (Graphviz), ``.dot``/``.gv``
            (DOT source) or ``.mmd`` (Mermaid); parent directories are created.
        status: ``{step: status}`` recolours and labels nodes (``succeeded``, ``cached``,
            ``failed``, ...).

    Returns:
        The path written.

    Raises:
        ValueError: an unknown suffix.
        graphviz.ExecutableNotFound: an image format without the Graphviz ``dot`` binary.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix == ".mmd":
        data = to_mermaid(compiled, status=status).encode()
    elif suffix in (".dot", ".gv"):
        data = to_dot(compiled, status=status).encode()
    elif suffix in GRAPHVIZ_FORMATS:
        source = graphviz.Source(to_dot(compiled, status=status))
        data = source.pipe(format=GRAPHVIZ_FORMATS[suffix], quiet=True)
    else:
        known = ", ".join([*GRAPHVIZ_FORMATS, *TEXT_FORMATS])
        raise ValueError(f"cannot render to {out.name!r}: unknown suffix (use {known})")
    atomic_write_bytes(out, data, make_parents=True)
    return out


__all__ = ["GRAPHVIZ_FORMATS", "KIND_STYLE", "STATUS_COLOR", "TEXT_FORMATS", "Drawable", "render",
           "to_dot", "to_mermaid"]
