"""A step constant that pydantic cannot validate (``max_depth="deep"`` for ``int``)."""

from __future__ import annotations

import airflowdsl as af


@af.ingest
def load() -> af.Dataset: ...


@af.train
def fit(train: af.Dataset, max_depth: int = 3) -> af.Checkpoint: ...


@af.pipeline
def bad_param(depth: int = 3):
    return fit(load(), max_depth="deep")
