"""Unknown keyword, too many positional arguments, a plain value for an artifact."""

from __future__ import annotations

import airflowdsl as af


@af.ingest
def load() -> af.Dataset: ...


@af.preprocess
def clean(ds: af.Dataset, drop_na: bool = True) -> af.Dataset: ...


@af.pipeline
def bad_calls():
    ds = load()
    clean(ds, dropna=False)           # unknown keyword
    clean(ds, True, 3)                # too many positional arguments
    return clean("data.csv")          # plain value where a Dataset artifact is required
