"""Keras helpers for TensorflowTrainer: Keras 3 detection and a Keras 3 custom training loop.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585:
``strategy.reduce`` on a nested tuple, then scalars reduced with ``axis=0``), so a Keras 3
model given to ``fit`` in a worker raises ``Keras3ModelError`` saying what to do instead:
write ``tf.keras`` (tf-keras; the trainer sets ``TF_USE_LEGACY_KERAS=1``), or train the
Keras 3 model with ``fit_custom_loop`` / ``keras3_train_step`` below (``strategy.run`` +
``strategy.reduce``, public API only). TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import functools
import traceback
import types
from collections.abc import Callable
from typing import Any

from airflowdsl.errors import Keras3ModelError

KERAS3_HINT = (
    "Keras 3's model.fit does not work under tf.distribute.MultiWorkerMirroredStrategy "
    "(keras-team/keras#20585). Either build the model with tf.keras (tf-keras: "
    "`import tensorflow as tf; tf.keras.Sequential(...)`, not `import keras`; "
    "TensorflowTrainer sets TF_USE_LEGACY_KERAS=1 in every worker so tf.keras is tf-keras), "
    "or keep the Keras 3 model and train it with "
    "airflowdsl.train.tensorflow.fit_custom_loop(strategy, model, optimizer, loss_fn, dataset) "
    "(or keras3_train_step for your own loop)."
)


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


#: the module ``from tensorflow import keras`` gives where tf.keras is Keras 3
DRIVER_KERAS3 = "keras._tf_keras"


def keras3_references(fn: Any) -> list[str]:
    """``name -> module`` lines for the globals and closure cells of ``fn`` (and of the
    functions of its own module it reaches) bound to Keras 3's ``tf.keras`` module
    (``keras._tf_keras...``): what ``from tensorflow import keras`` gives in a process
    where TensorFlow was imported without ``TF_USE_LEGACY_KERAS=1``. Ray pickles a module
    by name, so such a loop gets Keras 3 in the workers too, where the trainer made
    ``tf.keras`` tf-keras."""
    found: list[str] = []
    seen: set[int] = set()
    todo = [fn]
    home = getattr(inspect_target(fn), "__module__", None)
    while todo:
        obj = inspect_target(todo.pop())
        if id(obj) in seen or not isinstance(obj, types.FunctionType):
            continue
        seen.add(id(obj))
        values = [(name, obj.__globals__[name]) for name in _names(obj.__code__)
                  if name in obj.__globals__]
        values += [(name, cell.cell_contents) for name, cell
                   in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=False)
                   if _filled(cell)]
        for name, value in values:
            if isinstance(value, types.ModuleType):
                if value.__name__ == DRIVER_KERAS3 or value.__name__.startswith(DRIVER_KERAS3 + "."):
                    found.append(f"{name} -> {value.__name__} (in {obj.__qualname__})")
            elif isinstance(value, types.FunctionType) and value.__module__ == home:
                todo.append(value)
    return sorted(set(found))


def inspect_target(fn: Any) -> Any:
    """The plain function behind a ``functools.partial`` or a ``Keras3AwareLoop``."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, Keras3AwareLoop):
            fn = fn.loop
        else:
            return getattr(fn, "__func__", fn)


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def check_driver_keras(fn: Any) -> None:
    """``Keras3ModelError`` now when ``fn`` uses Keras 3's ``tf.keras`` from this process
    (see ``keras3_references``), with what to import instead."""
    refs = keras3_references(fn)
    if refs:
        raise Keras3ModelError(
            "train_loop_per_worker uses Keras 3 through tf.keras of this process: "
            f"{'; '.join(refs)}. Here TensorFlow was imported without TF_USE_LEGACY_KERAS=1, "
            "so `from tensorflow import keras` is Keras 3, and the workers would get Keras 3 "
            "too (Ray pickles a module by its name). Write `import tf_keras as keras` (or "
            "`import tensorflow as tf` and use `tf.keras` inside the function), or set "
            "TF_USE_LEGACY_KERAS=1 before TensorFlow is imported. " + KERAS3_HINT)


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


__all__ = [
    "DRIVER_KERAS3",
    "KERAS3_HINT",
    "Keras3AwareLoop",
    "Keras3ModelError",
    "check_driver_keras",
    "fit_custom_loop",
    "inspect_target",
    "is_keras3_model",
    "keras3_references",
    "keras3_train_step",
    "prepare_model",
]
