"""A module with steps but no pipeline."""

from __future__ import annotations

import airflowdsl as af


@af.step
def one() -> int:
    return 1
