"""``ReportCheckpointCallback``: ``session.report`` from tf-keras ``model.fit`` (AIR's shape).

The class subclasses ``tf_keras.callbacks.Callback``, so it is built on first access (a
module ``__getattr__``) and importing this module stays free of TensorFlow; it keeps a
stable ``module.qualname`` so Ray pickles it by reference.
"""

from __future__ import annotations

import shutil
from typing import Any

from airflowdsl.train.tensorflow_keras import prepare_model

_CALLBACK: type | None = None
_HOOKS = ("epoch_end", "train_end", "train_batch_end", "test_end")


def _make_callback() -> type:
    import tf_keras

    from airflowdsl.air import session
    from airflowdsl.train.tensorflow_checkpoint import TensorflowCheckpoint

    class ReportCheckpointCallback(tf_keras.callbacks.Callback):
        """Calls ``session.report`` from ``model.fit`` (AIR's keras ReportCheckpointCallback).

        ``metrics``: log keys to report (a list, or ``{reported name: log key}``; all logs
        when None); ``report_metrics_on`` / ``checkpoint_on``: ``epoch_end`` (default),
        ``train_end``, ``train_batch_end`` or ``test_end``; every worker reports and saves,
        rank 0's checkpoint is kept (its metadata has ``epoch`` at ``epoch_end``, to resume from).
        """

        def __init__(self, checkpoint_on: str | list[str] | None = "epoch_end",
                     report_metrics_on: str | list[str] = "epoch_end",
                     metrics: str | list[str] | dict[str, str] | None = None) -> None:
            super().__init__()
            self.report_on = _hooks(report_metrics_on)
            self.checkpoint_on = _hooks(checkpoint_on) if checkpoint_on else []
            if not set(self.checkpoint_on) <= set(self.report_on):
                raise ValueError(f"checkpoint_on {self.checkpoint_on} must be among "
                                 f"report_metrics_on {self.report_on}")
            self.metrics = [metrics] if isinstance(metrics, str) else metrics

        def set_model(self, model: Any) -> None:
            super().set_model(prepare_model(model))

        def _report(self, when: str, logs: dict[str, Any] | None,
                    epoch: int | None = None) -> None:
            if when not in self.report_on:
                return
            logs = dict(logs or {})
            if isinstance(self.metrics, dict):
                logs = {name: logs[key] for name, key in self.metrics.items()}
            elif self.metrics is not None:
                logs = {key: logs[key] for key in self.metrics}
            values = {k: float(v) if hasattr(v, "__float__") else v for k, v in logs.items()}
            ckpt = None
            if when in self.checkpoint_on:
                # every rank saves (TF's multi-worker guide: saving may run collectives; a
                # rank-0-only save hung here with 2 workers); the runtime keeps rank 0's copy
                meta = {"epoch": epoch} if epoch is not None else {}
                ckpt = TensorflowCheckpoint.from_model(self.model, metadata=meta)
            session.report(values, checkpoint=ckpt)
            if ckpt is not None:
                shutil.rmtree(ckpt.path, ignore_errors=True)  # report copied it already

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._report("epoch_end", logs, epoch)

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            self._report("train_end", logs)

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self._report("train_batch_end", logs)

        def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
            self._report("test_end", logs)

    ReportCheckpointCallback.__module__ = __name__  # picklable by reference (module getattr)
    ReportCheckpointCallback.__qualname__ = "ReportCheckpointCallback"
    return ReportCheckpointCallback


def _hooks(value: str | list[str]) -> list[str]:
    hooks = [value] if isinstance(value, str) else list(value)
    unknown = [h for h in hooks if h not in _HOOKS]
    if unknown:
        raise ValueError(f"unknown callback hook(s) {unknown}; choose from {list(_HOOKS)}")
    return hooks


def __getattr__(name: str) -> Any:
    global _CALLBACK
    if name == "ReportCheckpointCallback":
        if _CALLBACK is None:
            _CALLBACK = _make_callback()
        return _CALLBACK
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__: list[str] = []  # ReportCheckpointCallback comes through __getattr__
