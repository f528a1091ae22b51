"""The pipeline DSL: decorated steps, traced pipelines, the compiled typed DAG."""

from __future__ import annotations

from airflowdsl.dsl.artifacts import Checkpoint, Dataset
from airflowdsl.dsl.compile import CompiledPipeline
from airflowdsl.dsl.errors import CompileError, CompileProblem
from airflowdsl.dsl.handles import OutputRef
from airflowdsl.dsl.pipeline import Pipeline, pipeline
from airflowdsl.dsl.step import Step, StepSpec, ingest, predict, preprocess, step, train, tune
from airflowdsl.dsl.types import is_assignable

__all__ = ["Checkpoint", "CompileError", "CompileProblem", "CompiledPipeline", "Dataset",
           "OutputRef", "Pipeline", "Step", "StepSpec", "ingest", "is_assignable", "pipeline",
           "predict", "preprocess", "step", "train", "tune"]
