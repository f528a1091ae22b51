"""Callbacks a fit calls: pass them in ``RunConfig(callbacks=[...])`` of a trainer.

``ReportCallback`` is the shape of Ray Train v2's callback of the same name: the fit
calls ``on_report`` with every rank-0 report (the history row: metrics plus
``training_iteration`` and ``time_total_s``) and the checkpoint registered with it. A
Tune trial forwards a trainer's reports to Ray Tune through one of these
(``airflowdsl.tune.TuneReportCallback``), not through a global.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflowdsl.air.checkpoint import Checkpoint


class ReportCallback:
    """Receives every rank-0 report of a fit, in order, in the process that called ``fit()``.

    Subclass and override ``on_report``. Any object with an ``on_report(metrics,
    checkpoint)`` method in ``RunConfig.callbacks`` is called the same way.
    """

    #: True when the receiver of the reports decides when training stops (Ray Tune's stop
    #: rules and schedulers): a trainer that otherwise needs ``RunConfig.stop`` (RLTrainer)
    #: may then run without one.
    stops_training: bool = False

    def on_report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
        """One report: ``metrics`` is the history row, ``checkpoint`` the persisted one or None."""


def stopped_externally(callbacks: list[Any] | None) -> bool:
    """Whether one of ``callbacks`` decides when training stops (see ``stops_training``)."""
    return any(isinstance(cb, ReportCallback) and cb.stops_training for cb in callbacks or ())


__all__ = ["ReportCallback", "stopped_externally"]
