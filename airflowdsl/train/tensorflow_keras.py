"""Keras helpers for TensorflowTrainer: Keras 3 detection, a Keras 3 custom loop, the callback.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585:
``strategy.reduce`` on a nested tuple, then scalars reduced with ``axis=0``), so a Keras 3
model given to ``fit`` in a worker raises ``Keras3ModelError`` saying what to do instead:
write ``tf.keras`` (tf-keras; the trainer sets ``TF_USE_LEGACY_KERAS=1``), or train the
Keras 3 model with ``fit_custom_loop`` / ``keras3_train_step`` below (``strategy.run`` +
``strategy.reduce``, public API only). TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import shutil
import traceback
from collections.abc import Callable
from typing import Any

KERAS3_HINT = (
    "Keras 3's model.fit does not work under tf.distribute.MultiWorkerMirroredStrategy "
    "(keras-team/keras#20585). Either build the model with tf.keras (tf-keras: "
    "`import tensorflow as tf; tf.keras.Sequential(...)`, not `import keras`; "
    "TensorflowTrainer sets TF_USE_LEGACY_KERAS=1 in every worker so tf.keras is tf-keras), "
    "or keep the Keras 3 model and train it with "
    "airflowdsl.train.tensorflow.fit_custom_loop(strategy, model, optimizer, loss_fn, dataset) "
    "(or keras3_train_step for your own loop)."
)


class Keras3ModelError(TypeError):
    """A Keras 3 model was used where only tf-keras works (``model.fit`` under the strategy)."""


def is_keras3_model(model: Any) -> bool:
    """True for a Keras 3 model or layer (``keras.src...`` in its MRO, no ``tf_keras``)."""
    modules = [getattr(cls, "__module__", "") or "" for cls in type(model).__mro__]
    return (any(m == "keras" or m.startswith("keras.") for m in modules)
            and not any(m.startswith("tf_keras") for m in modules))


def prepare_model(model: Any) -> Any:
    """Check that ``model`` can be trained with ``model.fit`` in a TensorflowTrainer worker."""
    if is_keras3_model(model):
        raise Keras3ModelError(f"got a Keras 3 model ({type(model).__module__}."
                               f"{type(model).__qualname__}). {KERAS3_HINT}")
    return model


def _keras3_fit_failure(exc: BaseException) -> str | None:
    """The Keras 3 model whose ``fit``/``evaluate`` raised ``exc`` under a strategy, if any."""
    if "PerReplica" not in str(exc):
        return None
    for frame, _lineno in traceback.walk_tb(exc.__traceback__):
        args = frame.f_locals.get("args")  # Keras' traceback filter leaves error_handler(*args)
        for owner in (frame.f_locals.get("self"), *(args[:1] if isinstance(args, tuple) else ())):
            if owner is not None and is_keras3_model(owner):
                return f"{type(owner).__module__}.{type(owner).__qualname__}"
    return None


class Keras3AwareLoop:
    """Wraps ``train_loop_per_worker``: the known Keras 3 failure becomes a clear error."""

    def __init__(self, loop: Callable[..., Any]) -> None:
        self.loop = loop
        self.__wrapped__ = loop  # inspect.signature (call_loop) sees the user's signature

    def __call__(self, *args: Any) -> Any:
        try:
            return self.loop(*args)
        except Keras3ModelError:
            raise
        except Exception as exc:
            model = _keras3_fit_failure(exc)
            if model is None:
                raise
            first = str(exc).splitlines()[0][:200]
            raise Keras3ModelError(f"{type(exc).__name__} from a Keras 3 model ({model}) "
                                   f"under the distribution strategy: {first} ... "
                                   f"{KERAS3_HINT}").with_traceback(exc.__traceback__) from exc


def keras3_train_step(strategy: Any, model: Any, optimizer: Any,
                      loss_fn: Callable[[Any, Any], Any]) -> Callable[[Any], dict[str, Any]]:
    """One synchronous data-parallel step for a Keras 3 (or tf-keras) model, as a tf.function.

    ``step(batch)`` takes an element of ``strategy.experimental_distribute_dataset(ds)``
    (``(x, y)``) and returns ``{"loss": global mean loss, "rows": rows in the global batch}``.
    The loss is the exact mean over every replica's rows (row counts are all-reduced), the
    optimizer all-reduces (sums) the gradients. ``loss_fn(y, pred)`` may return per-row
    losses or their mean. Build the model and the optimizer under ``strategy.scope()``.
    """
    import tensorflow as tf

    if not getattr(model, "built", True):
        raise ValueError("keras3_train_step needs a built model: give it a keras.Input "
                         "(or call model.build) under strategy.scope()")
    if hasattr(optimizer, "build") and not getattr(optimizer, "built", True):
        with strategy.scope():
            optimizer.build(model.trainable_variables)
    sum_op = tf.distribute.ReduceOp.SUM

    def replica_step(x: Any, y: Any) -> tuple[Any, Any]:
        ctx = tf.distribute.get_replica_context()
        rows = tf.cast(tf.shape(y)[0], tf.float32)
        global_rows = ctx.all_reduce(sum_op, rows)
        with tf.GradientTape() as tape:
            losses = tf.cast(loss_fn(y, model(x, training=True)), tf.float32)
            local_sum = losses * rows if losses.shape.rank == 0 else tf.reduce_sum(losses)
            loss = tf.math.divide_no_nan(local_sum, global_rows)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, rows

    @tf.function
    def step(batch: Any) -> dict[str, Any]:
        args = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        loss, rows = strategy.run(replica_step, args=args)
        # one scalar per reduce call, axis=None (what Keras 3's own fit gets wrong)
        return {"loss": strategy.reduce(sum_op, loss, axis=None),
                "rows": strategy.reduce(sum_op, rows, axis=None)}

    return step


def fit_custom_loop(strategy: Any, model: Any, optimizer: Any, loss_fn: Callable[[Any, Any], Any],
                    dataset: Any, *, epochs: int = 1,
                    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
                    ) -> list[dict[str, float]]:
    """Train ``model`` on ``dataset`` (``prepare_dataset_shard``'s) for ``epochs`` epochs.

    The supported Keras 3 route under ``MultiWorkerMirroredStrategy``. Returns one dict per
    epoch: ``epoch``, ``loss`` (row-weighted mean), ``rows`` (rows trained on, all workers);
    ``on_epoch_end(epoch, logs)`` is called after each (e.g. to ``session.report``).
    """
    step = keras3_train_step(strategy, model, optimizer, loss_fn)
    distributed = strategy.experimental_distribute_dataset(dataset)
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        loss_sum, rows = 0.0, 0.0
        for batch in distributed:
            out = step(batch)
            n = float(out["rows"])
            loss_sum += float(out["loss"]) * n
            rows += n
        logs = {"epoch": float(epoch), "loss": loss_sum / rows if rows else float("nan"),
                "rows": rows}
        history.append(logs)
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)
    return history


_CALLBACK: type | None = None
_HOOKS = ("epoch_end", "train_end", "train_batch_end", "test_end")


def _make_callback() -> type:
    import tf_keras

    from airflowdsl.air import session
    from airflowdsl.train.tensorflow import TensorflowCheckpoint

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


__all__ = [
    "KERAS3_HINT",
    "Keras3AwareLoop",
    "Keras3ModelError",
    "fit_custom_loop",
    "is_keras3_model",
    "keras3_train_step",
    "prepare_model",
]
