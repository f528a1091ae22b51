"""airflowdsl: typed, cached ML pipelines on Ray.

``import airflowdsl as af``; decorate steps with ``@af.ingest``, ``@af.preprocess``,
``@af.train``, ``@af.tune``, ``@af.predict`` (or ``@af.step``), wire them in an
``@af.pipeline``, then ``compile()``, ``render()`` or ``run()`` it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflowdsl.dsl import (
        Checkpoint,
        CompiledPipeline,
        CompileError,
        CompileProblem,
        Dataset,
        OutputRef,
        Pipeline,
        Step,
        StepSpec,
        ingest,
        is_assignable,
        predict,
        preprocess,
    )
    from airflowdsl.dsl import train as train  # the decorator, not the module
    from airflowdsl.dsl import tune as tune
    from airflowdsl.dsl.pipeline import pipeline as pipeline
    from airflowdsl.dsl.step import step as step
    from airflowdsl.errors import AirflowDSLError

__version__ = "0.1.0"


class _Package(types.ModuleType):
    """``af.train``/``af.tune`` are the step decorators. Importing the submodules
    ``airflowdsl.train``/``airflowdsl.tune`` (lazily, when a trainer is first used) would
    make Python rebind those names to the modules; this keeps the decorators, which
    forward attribute access to the modules (docs/ARCHITECTURE.md)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("train", "tune") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # pickled by reference like any module (a step function's globals hold ``af``)
        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    """The public names load on first use (PEP 562): a Ray worker that imports
    ``airflowdsl.runtime.tasks`` to run a step does not import the DSL and networkx
    (~0.15 s of every new worker's start here); ``af.step`` and friends import them."""
    if name == "AirflowDSLError":
        from airflowdsl.errors import AirflowDSLError

        return AirflowDSLError
    if name in __all__:  # (``__version__`` is a plain global: never asked for here)
        from airflowdsl import dsl

        value = getattr(dsl, name)
        globals()[name] = value  # once (``_Package.__setattr__`` keeps modules out)
        return value
    if name.startswith("__"):  # tools probing ``__wrapped__`` and the like: no import
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:  # ``airflowdsl.runtime`` and the other subpackages, as before
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AirflowDSLError",
    "Checkpoint",
    "CompileError",
    "CompileProblem",
    "CompiledPipeline",
    "Dataset",
    "OutputRef",
    "Pipeline",
    "Step",
    "StepSpec",
    "__version__",
    "ingest",
    "is_assignable",
    "pipeline",
    "predict",
    "preprocess",
    "step",
    "train",
    "tune",
]
