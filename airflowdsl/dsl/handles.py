"""Symbolic step outputs, returned by step calls while a pipeline body is traced."""

from __future__ import annotations

from typing import Any, NamedTuple

from airflowdsl.dsl.types import type_name
from airflowdsl.errors import HandleUsageError


class OutputRef(NamedTuple):
    """One output of a node: ``index`` None means the step's whole (single) output."""

    node: str
    index: int | None  # type: ignore[assignment]  # shadows tuple.index, by contract


class OutputHandle:
    """The symbolic output of a step call; pass it to other steps or return it."""

    __slots__ = ("owner", "ref", "type")

    def __init__(self, owner: object, ref: OutputRef, type_: Any) -> None:
        self.owner = owner  # the Trace that made it
        self.ref = ref
        self.type = type_

    def _what(self) -> str:
        idx = "" if self.ref.index is None else f" #{self.ref.index}"
        return f"output{idx} of step {self.ref.node!r} ({type_name(self.type)})"

    def __iter__(self) -> Any:
        raise HandleUsageError(
            f"the {self._what()} is a single value and cannot be unpacked; "
            "annotate the step's return as tuple[...] to give it several outputs")

    def __bool__(self) -> bool:
        raise HandleUsageError(
            f"the {self._what()} is symbolic while the pipeline is compiled; "
            "branch on it inside a step, not in the pipeline body")

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise HandleUsageError(
            f"the {self._what()} is symbolic while the pipeline is compiled "
            f"(no attribute {attr!r}); use it inside a step")

    def __repr__(self) -> str:
        return f"<{self._what()}>"


class MultiOutput(tuple):  # type: ignore[type-arg]
    """The outputs of a step annotated ``-> tuple[A, B]``: unpack or index it."""

    node: str

    def __new__(cls, node: str, handles: list[OutputHandle]) -> MultiOutput:
        obj = super().__new__(cls, handles)
        obj.node = node
        return obj


def contains_handle(value: Any, depth: int = 3) -> bool:
    """Whether a container value holds step outputs (they cannot be nested)."""
    if isinstance(value, OutputHandle):
        return True
    if depth == 0:
        return False
    if isinstance(value, dict):
        return any(contains_handle(v, depth - 1) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(contains_handle(v, depth - 1) for v in value)
    return False


__all__ = ["HandleUsageError", "MultiOutput", "OutputHandle", "OutputRef", "contains_handle"]
