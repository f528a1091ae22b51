"""Drawing a compiled pipeline: Graphviz (.svg .png .pdf .dot) or Mermaid (.mmd).

Nodes are shaped and coloured by step kind and labelled ``name`` + ``kind``; edges are
labelled with the artifact type. ``status`` ({step: status}) recolours nodes by run
status. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import graphviz

if TYPE_CHECKING:
    from airflowdsl.dsl.compile import CompiledPipeline

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


def to_dot(compiled: CompiledPipeline, *, status: dict[str, str] | None = None) -> str:
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
        dot.edge(up, down, label=data.get("type", ""), tooltip=data.get("param", ""))
    return dot.source


def _mm_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(compiled: CompiledPipeline, *, status: dict[str, str] | None = None) -> str:
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


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def render(compiled: CompiledPipeline, path: str | os.PathLike[str], *,
           status: dict[str, str] | None = None) -> Path:
    """Write the drawing; the suffix picks the format. Returns the path written."""
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
    _atomic_write(out, data)
    return out


__all__ = ["KIND_STYLE", "STATUS_COLOR", "render", "to_dot", "to_mermaid"]
