"""A worker's dataset shard as a ``tf.data.Dataset`` that trains whole under the strategy.

The measured trap (docs/training.md): under ``MultiWorkerMirroredStrategy`` a dataset's
batch is taken as the *global* batch and re-split across all replicas, so with a
known-length dataset Keras runs ``len(dataset)`` steps of half-batches (two workers) and
half of every shard is never trained on. Ray already sharded the data, so the dataset
returned here has auto-sharding OFF and an *unknown* length (``fit`` runs until the data
ends), and its batches are ``batch_size * num_replicas`` rows so that each replica still
trains ``batch_size`` rows per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def for_strategy(dataset: Any) -> Any:
    """``dataset`` with auto-sharding OFF and an unknown length (what the strategy needs here)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    if int(dataset.cardinality()) != int(tf.data.UNKNOWN_CARDINALITY):
        dataset = dataset.filter(lambda *_: True)  # forget the length: fit runs to the end
    return dataset.with_options(options)


def _replicas(strategy: Any) -> int:
    if strategy is not None:
        return int(strategy.num_replicas_in_sync)
    from airflowdsl.air import session

    current = session.get_session()
    return current.world_size if current is not None else 1


def _width(field_type: Any) -> int:
    shape = getattr(field_type, "shape", None)  # Ray's tensor extension types
    return int(np.prod(shape)) if shape else 1


def prepare_dataset_shard(
    shard: Any,
    *,
    feature_columns: str | list[str] | None = None,
    label_column: str | None = None,
    batch_size: int = 32,
    strategy: Any = None,
    dtype: str = "float32",
    label_dtype: str = "float32",
    drop_last: bool = False,
    local_shuffle_buffer_size: int | None = None,
    local_shuffle_seed: int | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(features, label)`` batches from a session dataset shard.

    ``shard``: ``session.get_dataset_shard(...)`` (a Ray ``DataIterator``), or an existing
    ``tf.data.Dataset`` (then only auto-sharding OFF + unknown length are applied, as AIR's
    ``prepare_dataset_shard`` did). Feature columns (default: all but the label) are stacked
    into one ``(rows, k)`` matrix. ``batch_size`` is per replica (per worker on CPU): the
    dataset is batched by ``batch_size * strategy.num_replicas_in_sync`` (``strategy``
    defaults to one replica per worker), which the strategy splits back per replica.
    """
    import tensorflow as tf

    if isinstance(shard, tf.data.Dataset):
        return for_strategy(shard)
    schema = shard.schema()
    types = dict(zip(schema.names, schema.types, strict=True))
    if feature_columns is None:
        feature_columns = [n for n in schema.names if n != label_column]
    columns = [feature_columns] if isinstance(feature_columns, str) else list(feature_columns)
    missing = [c for c in [*columns, label_column] if c is not None and c not in types]
    if missing:
        raise KeyError(f"columns {missing} are not in the dataset (columns: {schema.names})")
    width = sum(_width(types[c]) for c in columns)
    global_batch = batch_size * _replicas(strategy)

    def batches() -> Any:
        for batch in shard.iter_batches(batch_size=global_batch, batch_format="numpy",
                                        drop_last=drop_last,
                                        local_shuffle_buffer_size=local_shuffle_buffer_size,
                                        local_shuffle_seed=local_shuffle_seed):
            n = len(batch[columns[0]])
            x = np.concatenate([np.asarray(batch[c], dtype=dtype).reshape(n, -1)
                                for c in columns], axis=1)
            if label_column is None:
                yield x
            else:
                # a copy: the batch may be a zero-copy view of a Ray object that is freed
                # once the iterator moves on, while TensorFlow may still hold the buffer
                yield x, np.array(batch[label_column], dtype=label_dtype, copy=True)

    x_spec = tf.TensorSpec((None, width), dtype)
    signature = x_spec if label_column is None else (x_spec, tf.TensorSpec((None,), label_dtype))
    return for_strategy(tf.data.Dataset.from_generator(batches, output_signature=signature))


__all__ = ["for_strategy", "prepare_dataset_shard"]
