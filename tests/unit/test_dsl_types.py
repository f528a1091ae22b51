"""is_assignable: the edge type check (Any, Optional/Union, subclasses, generics)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Optional, TypeVar, Union

import pytest

import airflowdsl as af
from airflowdsl.dsl.types import is_assignable, type_name


class Base: ...


class Child(Base): ...


T = TypeVar("T")

CASES = [
    (int, int, True),
    (int, str, False),
    (int, float, True),              # numeric promotion
    (float, int, False),
    (bool, int, True),               # subclass
    (Child, Base, True),
    (Base, Child, False),
    (Any, str, True),
    (str, Any, True),
    (T, int, True),                  # TypeVar = Any
    (int, object, True),
    (int, Optional[int], True),
    (None, Optional[int], True),
    (Optional[int], int, False),     # a None could flow in
    (Union[int, str], Union[str, int, None], True),
    (int | str, str, False),
    (list[int], list[int], True),
    (list[int], list[str], False),
    (list[int], Sequence[int], True),
    (list, list[str], True),         # bare generic = any parameters
    (list[str], list, True),
    (dict[str, int], dict[str, int], True),
    (dict[str, int], dict[str, str], False),
    (dict[str, int], Mapping[str, int], True),
    (tuple[int, str], tuple[int, str], True),
    (tuple[int, str], tuple[str, int], False),
    (tuple[int, int], tuple[int, ...], True),
    (tuple[int, ...], tuple[int, int], False),
    (tuple[int, str], tuple[int], False),
    (Annotated[int, "meta"], int, True),
    (Literal["a", "b"], str, True),
    (Literal["a"], Literal["a", "b"], True),
    (str, Literal["a"], False),
    (af.Dataset, af.Checkpoint, False),
    (af.Checkpoint, af.Dataset, False),
    (af.Dataset, Optional[af.Dataset], True),
    ("SomeForwardRef", int, True),
]


@pytest.mark.parametrize(("src", "dst", "expected"), CASES)
def test_is_assignable(src: Any, dst: Any, expected: bool) -> None:
    assert is_assignable(src, dst) is expected


@pytest.mark.parametrize(("ann", "name"), [
    (int, "int"), (list[int], "list[int]"), (dict[str, list[int]], "dict[str, list[int]]"),
    (Optional[int], "int | None"), (af.Dataset, "Dataset"), (tuple[int, ...], "tuple[int, ...]"),
    (Any, "Any"), (Annotated[float, "x"], "float"),
])
def test_type_name(ann: Any, name: str) -> None:
    assert type_name(ann) == name
