"""Binding one traced step call: arguments to inputs (edges) and params (constants)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from airflowdsl.dsl.artifacts import artifact_type
from airflowdsl.dsl.handles import MultiOutput, OutputHandle, contains_handle
from airflowdsl.dsl.step import StepSpec
from airflowdsl.dsl.types import is_assignable, type_name, value_desc
from airflowdsl.dsl.validate import validate_value

_P = inspect.Parameter
_NAMED = (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)

# report(kind, parameter, message, expected=None, given=None)
Report = Callable[..., None]


def _match(spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
           report: Report) -> dict[str, Any]:
    params = list(spec.signature.parameters.values())
    positional = [p for p in params if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
    var_kw = any(p.kind is _P.VAR_KEYWORD for p in params)
    bound: dict[str, Any] = {p.name: v for p, v in zip(positional, args, strict=False)}
    if len(args) > len(positional) and any(p.kind is _P.VAR_POSITIONAL for p in params):
        report("unsupported", None, "extra positional arguments for *args cannot be bound "
               "by name in a pipeline; give each a named parameter")
    elif len(args) > len(positional):
        report("too_many_positional", None,
               f"too many positional arguments: takes {len(positional)}, got {len(args)}",
               expected=f"at most {len(positional)}", given=str(len(args)))
    for key, value in kwargs.items():
        p = spec.signature.parameters.get(key)
        if p is None or p.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD):
            if var_kw:
                bound[key] = value
                continue
            accepted = ", ".join(q.name for q in params if q.kind in _NAMED) or "nothing"
            report("unknown_keyword", key,
                   f"unknown keyword argument; step {spec.fn.__name__}() accepts: {accepted}")
        elif key in bound:
            report("bad_usage", key, "got multiple values (positional and keyword)")
        else:
            bound[key] = value
    for p in params:
        if p.kind is _P.POSITIONAL_ONLY:
            report("unsupported", p.name, "positional-only parameters cannot be bound by name; "
                   "remove the '/' from the step's signature")
        elif p.kind in _NAMED and p.name not in bound and p.default is _P.empty:
            ann = spec.input_types.get(p.name, Any)
            report("missing_input", p.name, f"missing required input (expected {type_name(ann)})",
                   expected=type_name(ann), given="nothing")
    return bound


def _annotation(spec: StepSpec, name: str) -> Any:
    if name in spec.input_types and spec.signature.parameters[name].kind in _NAMED:
        return spec.input_types[name]
    for p in spec.signature.parameters.values():
        if p.kind is _P.VAR_KEYWORD:
            return spec.input_types.get(p.name, Any)
    return Any


def bind_call(spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any], *,
              owner: object, report: Report
              ) -> tuple[dict[str, Any], dict[str, tuple[str, int | None]]]:
    """(params, inputs) of one call; every problem goes to ``report``."""
    bound = _match(spec, args, kwargs, report)
    params: dict[str, Any] = {}
    inputs: dict[str, tuple[str, int | None]] = {}
    for name, value in bound.items():
        ann = _annotation(spec, name)
        if isinstance(value, OutputHandle):
            if value.owner is not owner:
                report("bad_usage", name, f"{value!r} belongs to another pipeline compile")
            elif not is_assignable(value.type, ann):
                src = type_name(value.type)
                report("type_mismatch", name,
                       f"expected {type_name(ann)}, got {src} from step {value.ref.node!r}",
                       expected=type_name(ann), given=src)
            inputs[name] = (value.ref.node, value.ref.index)
        elif isinstance(value, MultiOutput):
            report("bad_usage", name,
                   f"got all {len(value)} outputs of step {value.node!r} at once; unpack them "
                   f"first (a, b = {value.node}(...)) or index one ({value.node}(...)[0])")
        elif contains_handle(value):
            report("unsupported", name, "step outputs nested in a list/tuple/dict are not "
                   "supported; pass each output to its own parameter")
        elif (art := artifact_type(ann)) is not None and not (
                value is None and is_assignable(type(None), ann)):
            report("artifact_required", name,
                   f"expected a {art.__name__} artifact produced by a step, got plain value "
                   f"{value_desc(value)}; plain values for artifact inputs are a compile "
                   "error: pass the output of a step",
                   expected=type_name(ann), given=value_desc(value))
        else:
            coerced, err = validate_value(ann, value)
            if err is not None:
                report("invalid_value", name,
                       f"expected {type_name(ann)}, got {value_desc(value)} — pydantic: {err}",
                       expected=type_name(ann), given=value_desc(value))
            params[name] = coerced
    for p in spec.signature.parameters.values():
        if p.kind in _NAMED and p.name not in bound and p.default is not _P.empty:
            params[p.name] = p.default
    return params, inputs


__all__ = ["bind_call"]
