"""Edges whose types do not fit: Dataset into Checkpoint, int into str, list[int] into list[str]."""

from __future__ import annotations

import airflowdsl as af


@af.ingest
def load() -> af.Dataset: ...


@af.step
def count() -> int: ...


@af.step
def ids() -> list[int]: ...


@af.predict
def score(ckpt: af.Checkpoint, ds: af.Dataset) -> af.Dataset: ...


@af.step
def label(text: str) -> str: ...


@af.step
def names(values: list[str]) -> int: ...


@af.pipeline
def mistyped():
    ds = load()
    score(ds, ds)            # Dataset where a Checkpoint is expected
    label(count())           # int into str
    return names(ids())      # list[int] into list[str]
