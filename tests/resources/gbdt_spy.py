"""Helpers for the GBDT trainer tests (importable on the Ray workers).

``spy_trainer(XGBoostTrainer, ids_dir)`` is the trainer whose workers first write the
``row_id`` values of their ``train`` shard to ``ids_dir/rank<r>.json``, drop the column,
and then run the real built-in loop on the rest.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROW_ID = "row_id"


def recording_loop(config: dict[str, Any], *, real_loop: Callable[[dict[str, Any]], None],
                   ids_dir: str) -> None:
    import ray.data

    from airflowdsl.air import session
    from airflowdsl.train._gbdt import to_frame

    sess = session.get_session()
    assert sess is not None
    frame = to_frame(sess.dataset_shards["train"])
    Path(ids_dir, f"rank{sess.world_rank}.json").write_text(json.dumps(frame[ROW_ID].tolist()))
    sess.dataset_shards["train"] = ray.data.from_pandas(frame.drop(columns=[ROW_ID])).iterator()
    real_loop(config)


def spy_trainer(trainer_cls: type, ids_dir: str) -> type:
    loop = functools.partial(recording_loop, real_loop=trainer_cls._train_loop, ids_dir=ids_dir)
    return type(f"Spy{trainer_cls.__name__}", (trainer_cls,), {"_train_loop": staticmethod(loop)})
