"""Two pipelines in one file: the CLI needs FILE:NAME."""

from __future__ import annotations

import airflowdsl as af


@af.step
def one() -> int:
    return 1


@af.pipeline
def first():
    return one()


@af.pipeline
def second():
    return one()
