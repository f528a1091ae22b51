"""Pipeline parameters: a pydantic model derived from the pipeline's signature.

A pipeline without parameters has no model: it accepts no keyword, and pydantic (~20 ms
of imports plus the first model, ~0.1 s on a busy 2-core box) is not imported for it.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from airflowdsl.dsl.errors import CompileProblem
from airflowdsl.dsl.types import type_name, value_desc

if TYPE_CHECKING:
    from pydantic import BaseModel

_P = inspect.Parameter


def params_model(name: str, signature: inspect.Signature,
                 types: dict[str, Any]) -> type[BaseModel] | None:
    """Fields are stored under internal names with the parameter name as alias, so
    parameters may be called ``schema`` or ``copy`` without clashing with BaseModel.
    None for a pipeline without named parameters (it accepts none)."""
    params = [(i, p) for i, p in enumerate(signature.parameters.values())
              if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)]
    if not params:
        return None
    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    for i, p in params:
        default = ... if p.default is _P.empty else p.default
        fields[f"p{i}"] = (types.get(p.name, Any), Field(default, alias=p.name))
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=False,
                        protected_namespaces=())
    model: type[BaseModel] = create_model(f"{name}_params", __config__=config, **fields)
    return model


def _unknown(pipeline: str, signature: inspect.Signature, key: str | None) -> CompileProblem:
    accepted = ", ".join(signature.parameters) or "nothing"
    msg = f"unknown pipeline parameter; {pipeline}() accepts: {accepted}"
    return CompileProblem("unknown_keyword", pipeline, msg, parameter=key)


def validate_params(pipeline: str, model: type[BaseModel] | None, signature: inspect.Signature,
                    types: dict[str, Any], values: dict[str, Any]
                    ) -> tuple[dict[str, Any], list[CompileProblem]]:
    """(validated params by name, problems)."""
    if model is None:  # no named parameters: every keyword is unknown (as extra="forbid")
        return dict(values), [_unknown(pipeline, signature, str(k)) for k in values]
    from pydantic import ValidationError

    try:
        inst = model.model_validate(values)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = str(e["loc"][0]) if e.get("loc") else None
            ann = types.get(key, Any) if key else Any
            if e["type"] == "extra_forbidden":
                problems.append(_unknown(pipeline, signature, key))
            elif e["type"] == "missing":
                msg = f"missing required pipeline parameter (expected {type_name(ann)})"
                problems.append(CompileProblem("missing_input", pipeline, msg, parameter=key,
                                               expected=type_name(ann), given="nothing"))
            else:
                given = value_desc(values.get(key)) if key in values else "?"
                loc = ".".join(str(x) for x in e["loc"][1:])
                detail = f"{loc}: {e['msg']}" if loc else e["msg"]
                msg = f"expected {type_name(ann)}, got {given} — pydantic: {detail}"
                problems.append(CompileProblem("invalid_pipeline_param", pipeline, msg,
                                               parameter=key, expected=type_name(ann),
                                               given=given))
        return dict(values), problems
    dumped = {}
    for i, p in enumerate(signature.parameters.values()):
        if f"p{i}" in type(inst).model_fields:
            dumped[p.name] = getattr(inst, f"p{i}")
    return dumped, []


__all__ = ["params_model", "validate_params"]
