"""airflowdsl: typed, cached ML pipelines on Ray.

``import airflowdsl as af``; decorate steps with ``@af.ingest``, ``@af.preprocess``,
``@af.train``, ``@af.tune``, ``@af.predict`` (or ``@af.step``), wire them in an
``@af.pipeline``, then ``compile()``, ``render()`` or ``run()`` it.
"""

from __future__ import annotations

# The modules first: Python sets the package attributes ``train``/``tune`` when the
# submodules load, and the decorator bindings below must win (docs/ARCHITECTURE.md).
import airflowdsl.train
import airflowdsl.tune  # noqa: F401
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

__version__ = "0.1.0"

__all__ = [
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
