"""airflowdsl: typed, cached ML pipelines on Ray.

``import airflowdsl as af``; decorate steps with ``@af.ingest``, ``@af.preprocess``,
``@af.train``, ``@af.tune``, ``@af.predict`` (or ``@af.step``), wire them in an
``@af.pipeline``, then ``compile()``, ``render()`` or ``run()`` it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

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
    pipeline,
    predict,
    preprocess,
    step,
)
from airflowdsl.dsl import train as train  # the decorator, not the module
from airflowdsl.dsl import tune as tune
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
