"""A step's checkpoint outputs checked against their annotations when the step returns.

Compile time checks the edges by annotation (a framework checkpoint class such as
``XGBoostCheckpoint`` is a subtype of ``af.Checkpoint``); this module checks that the
value a step returns really is the checkpoint class its annotation names, so a
consumer annotated ``XGBoostCheckpoint`` never receives a ``TorchCheckpoint`` or a plain
``Checkpoint``. The classes travel as dotted names (the worker need not import the
module that defines them to compare names along the value's MRO).
"""

from __future__ import annotations

import types
import typing
from typing import Any, NamedTuple, Union

from airflowdsl.air.checkpoint import Checkpoint


class OutputCheck(NamedTuple):
    output: int  # which output (its index)
    dotted: str  # module.qualname of the declared checkpoint class
    name: str  # its short name, for messages
    optional: bool  # ``X | None``: None is accepted too


def checkpoint_checks(output_types: tuple[Any, ...]) -> tuple[OutputCheck, ...]:
    """One check per output annotated with a ``Checkpoint`` class (or ``X | None``)."""
    checks = []
    for index, ann in enumerate(output_types):
        while typing.get_origin(ann) is typing.Annotated:
            ann = typing.get_args(ann)[0]
        optional = False
        if typing.get_origin(ann) in (Union, types.UnionType):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(members) != 1:
                continue
            ann, optional = members[0], True
        if isinstance(ann, type) and issubclass(ann, Checkpoint):
            checks.append(OutputCheck(index, f"{ann.__module__}.{ann.__qualname__}",
                                      ann.__qualname__, optional))
    return tuple(checks)


def wrong_output(checks: tuple[OutputCheck, ...], outputs: tuple[Any, ...]) -> str | None:
    """What is wrong with ``outputs`` under ``checks`` (a message), or None."""
    for check in checks:
        value = outputs[check.output]
        if value is None and check.optional:
            continue
        mro = type(value).__mro__
        if any(f"{c.__module__}.{c.__qualname__}" == check.dotted for c in mro):
            continue
        which = f"output {check.output}" if len(outputs) > 1 else "its output"
        got = type(value).__qualname__
        hint = (f"wrap it as {check.name}.from_checkpoint(ckpt), or annotate the output "
                "af.Checkpoint" if isinstance(value, Checkpoint) else f"return a {check.name}")
        return (f"returned a {got} as {which}, but its annotation says {check.name}: "
                f"{hint}")
    return None


__all__ = ["OutputCheck", "checkpoint_checks", "wrong_output"]
