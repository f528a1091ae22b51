"""Former home of the renderer, kept so ``airflowdsl.render`` imports keep working.

The renderer is part of the DSL layer now: ``airflowdsl.dsl.render``.
"""

from __future__ import annotations

from airflowdsl.dsl.render import (
    GRAPHVIZ_FORMATS,
    KIND_STYLE,
    STATUS_COLOR,
    TEXT_FORMATS,
    Drawable,
    render,
    to_dot,
    to_mermaid,
)

__all__ = ["GRAPHVIZ_FORMATS", "KIND_STYLE", "STATUS_COLOR", "TEXT_FORMATS", "Drawable",
           "render", "to_dot", "to_mermaid"]
