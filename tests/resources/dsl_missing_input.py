"""A step called without its required input."""

from __future__ import annotations

import airflowdsl as af


@af.ingest
def load() -> af.Dataset: ...


@af.train
def fit(train: af.Dataset, valid: af.Dataset, max_depth: int = 3) -> af.Checkpoint: ...


@af.pipeline
def missing_input():
    return fit(load())
