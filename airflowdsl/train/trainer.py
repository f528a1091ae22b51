"""Trainer bases: ``BaseTrainer`` (fit, Tune overrides) and ``DataParallelTrainer``."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import RunConfig, ScalingConfig, scaling_config_from
from airflowdsl.air.result import Result
from airflowdsl.errors import TrainingFailedError
from airflowdsl.train.backend import Backend
from airflowdsl.train.preprocess import check as check_preprocessor

T = TypeVar("T", bound="BaseTrainer")


class BaseTrainer:
    """Remembers its constructor arguments so a ``Tuner`` can override any of them."""

    _init_args: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        # bind_partial: unpickling calls __new__ without arguments (then restores __dict__)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind_partial(self, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}: {exc}; it takes: {accepted(cls)}") from None
        self._init_args = {k: v for k, v in bound.arguments.items() if k != "self"}
        return self

    def with_overrides(self: T, overrides: dict[str, Any]) -> T:
        """A copy of this trainer with constructor arguments overridden (dicts merge deeply)."""
        known = inspect.signature(type(self).__init__).parameters
        var_kw = next((n for n, p in known.items() if p.kind is p.VAR_KEYWORD), None)
        args = copy.copy(self._init_args)
        if var_kw:
            args.update(args.pop(var_kw, {}))
        for key, value in overrides.items():
            if key not in known and var_kw is None:
                raise ValueError(
                    f"param_space key {key!r} is not an argument of {type(self).__name__} "
                    f"(arguments: {', '.join(k for k in known if k != 'self')})"
                )
            args[key] = _merge(args.get(key), value)
        return type(self)(**args)

    def fit(self) -> Result:
        raise NotImplementedError


def accepted(cls: type) -> str:
    """The keyword arguments ``cls(...)`` accepts, for error messages."""
    params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    return ", ".join(n for n, p in params.items()
                     if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value)
        return out
    if (dataclasses.is_dataclass(base) and not isinstance(base, type)
            and isinstance(override, dict)):
        # a config a Tuner resolved field by field (ScalingConfig(num_workers=grid_search))
        # rebuilt with its resolved values, validated again
        return dataclasses.replace(base, **override)  # type: ignore[type-var]
    return override


class DataParallelTrainer(BaseTrainer):
    """Runs ``train_loop_per_worker`` on an actor group, ``datasets['train']`` split across it."""

    backend_cls: type[Backend] = Backend
    #: datasets split across workers; the others are given whole to every worker
    split_datasets: tuple[str, ...] = ("train",)

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: dict[str, Any] | None = None,
        backend_config: Any = None,
        scaling_config: ScalingConfig | dict[str, Any] | None = None,
        run_config: RunConfig | None = None,
        datasets: dict[str, Any] | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
        dataset_config: dict[str, Any] | None = None,
        preprocessor: Any = None,
    ) -> None:
        if not callable(train_loop_per_worker):
            raise TypeError("train_loop_per_worker must be a function taking () or (config)")
        check_preprocessor(preprocessor, owner=type(self).__name__)
        self.preprocessor = preprocessor
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = train_loop_config
        self.backend_config = backend_config
        self.scaling_config = scaling_config_from(scaling_config, default=ScalingConfig())
        self.run_config = run_config or RunConfig()
        self.datasets = dict(datasets or {})
        self.resume_from_checkpoint = resume_from_checkpoint
        self.dataset_config = dict(dataset_config or {})
        if isinstance(self.dataset_config.get("split"), (list, tuple)):
            self.split_datasets = tuple(self.dataset_config["split"])

    def make_backend(self) -> Backend:
        return self.backend_cls()

    def fit(self) -> Result:
        """Train; returns a ``Result`` or raises ``TrainingFailedError``."""
        from airflowdsl.train.fit import run_fit

        return run_fit(self)


__all__ = ["BaseTrainer", "DataParallelTrainer", "TrainingFailedError", "accepted"]
