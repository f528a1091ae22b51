"""Tune search spaces inside AIR config objects, recognised without importing Ray Tune.

AIR let a Tuner's ``param_space`` hold search spaces anywhere, config objects included:
``{"scaling_config": ScalingConfig(num_workers=tune.grid_search([1, 2]))}``. Our configs
accept a search space in any field (:func:`is_search_space`) and validate the value a
trial resolves (the Tuner turns such a config into a dict Tune can resolve, see
:func:`config_fields`, and the trial rebuilds it with ``dataclasses.replace``, which
validates again).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def is_search_space(value: Any) -> bool:
    """``{"grid_search": [...]}`` or a Ray Tune ``Domain`` (``tune.choice``, ``randint``,
    ``sample_from``, ...)."""
    if isinstance(value, dict):
        return set(value) == {"grid_search"} and isinstance(value["grid_search"], list)
    return any(cls.__name__ == "Domain" and cls.__module__.startswith("ray.tune.search")
               for cls in type(value).__mro__)


def contains_search_space(value: Any) -> bool:
    """A search space anywhere in ``value`` (dicts, lists, tuples, config dataclasses)."""
    if is_search_space(value):
        return True
    if isinstance(value, dict):
        return any(contains_search_space(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_search_space(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(contains_search_space(v) for v in config_fields(value).values())
    return False


def config_fields(config: Any) -> dict[str, Any]:
    """A config dataclass's fields as a dict (not recursive: nested configs stay objects)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def unresolved(config: Any, *, owner: str) -> None:
    """Raise when a config still holds a search space where a value is needed (outside
    a Tuner, or a space the Tuner could not see)."""
    for name, value in config_fields(config).items():
        if contains_search_space(value):
            raise ValueError(
                f"{owner}: {type(config).__name__}.{name} is a Tune search space "
                f"({value!r}); search spaces are resolved by a Tuner: pass the trainer to "
                f"airflowdsl.tune.Tuner (param_space={{...}}), or give a value")


__all__ = ["config_fields", "contains_search_space", "is_search_space", "unresolved"]
