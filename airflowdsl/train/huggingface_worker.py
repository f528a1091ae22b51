"""Worker side of ``HuggingFaceTrainer`` (imports transformers; loaded only on workers).

* ``ShardDataset``: this worker's shard, materialized as a map-style torch ``Dataset`` of
  row dicts (HF's samplers, collators and epoch counting need ``__len__``).
* The user's ``Trainer`` is re-classed so that a ``ShardDataset`` gets a plain
  ``DataLoader``: HF would otherwise let accelerate shard it again across the processes
  (each worker would train on half of its half). Shards are equal-sized
  (``streaming_split(equal=True)``), so every rank runs the same number of steps.
* ``SessionReportCallback``: HF logs become ``session.report``s, HF checkpoints our
  Checkpoints (rank 0's), the same number of reports on every rank.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import transformers
from torch.utils.data import DataLoader, Dataset
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from airflowdsl.air import session as air_session
from airflowdsl.air.checkpoint import Checkpoint


class ShardDataset(Dataset):
    """A list of row dicts as a torch ``Dataset``; ``map(fn)`` gives a transformed copy."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    @classmethod
    def from_shard(cls, shard: Any) -> ShardDataset:
        return cls([dict(row) for row in shard.iter_rows()])

    def map(self, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> ShardDataset:
        return ShardDataset([fn(row) for row in self.rows])

    @property
    def column_names(self) -> list[str]:
        return list(self.rows[0]) if self.rows else []

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]


class _ShardAwareMixin:
    """Overrides ``Trainer._get_dataloader``: no accelerate re-sharding of a ShardDataset."""

    def _get_dataloader(self, dataset: Any, description: str, batch_size: int,
                        sampler_fn: Callable[..., Any] | None = None, is_training: bool = False,
                        dataloader_key: str | None = None) -> Any:
        if not isinstance(dataset, ShardDataset):
            return super()._get_dataloader(dataset, description, batch_size,  # type: ignore[misc]
                                           sampler_fn, is_training, dataloader_key)
        trainer: Any = self
        args = trainer.args
        collate = trainer._get_collator_with_removed_columns(trainer.data_collator,
                                                             description=description)
        sampler = (sampler_fn(dataset) if sampler_fn is not None and is_training
                   else None)  # eval: in order; train: HF's RandomSampler (same seed on all ranks)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                          drop_last=args.dataloader_drop_last,
                          num_workers=args.dataloader_num_workers,
                          pin_memory=args.dataloader_pin_memory)


def prepare_trainer(trainer: transformers.Trainer) -> transformers.Trainer:
    """Re-class ``trainer`` (any Trainer subclass) so shard datasets are used as they are."""
    base = type(trainer)
    if not isinstance(trainer, _ShardAwareMixin):
        trainer.__class__ = type(f"ShardAware{base.__name__}", (_ShardAwareMixin, base), {})
    return trainer


class SessionReportCallback(transformers.TrainerCallback):
    """HF logs → ``session.report`` (one report per log/save group, the same on every rank).

    Logs gather until the next save (reported with rank 0's ``checkpoint-N``) or the next
    step/epoch begins; the last report, at the end of training, carries the latest value
    of every metric and the final model when it was not saved already.
    """

    def __init__(self) -> None:
        self.pending: dict[str, Any] = {}
        self.latest: dict[str, Any] = {}
        self.saved_step = -1

    def _report(self, state: Any, checkpoint: Checkpoint | None = None) -> None:
        metrics = {**self.pending, "step": state.global_step}
        if state.epoch is not None:
            metrics.setdefault("epoch", state.epoch)
        self.latest.update(metrics)
        self.pending = {}
        air_session.report(metrics, checkpoint=checkpoint if state.is_world_process_zero else None)

    def _flush(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.pending:
            self._report(state)

    on_step_begin = on_epoch_begin = _flush

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        self.pending.update({k: v for k, v in (logs or {}).items()
                             if isinstance(v, (int, float, str, bool))})

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        path = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        ckpt = Checkpoint(path) if state.is_world_process_zero and os.path.isdir(path) else None
        self.saved_step = state.global_step
        self._report(state, ckpt)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None,
                     processing_class: Any = None, **kwargs: Any) -> None:
        self.pending = {**self.latest, **self.pending}
        ckpt = None
        if self.saved_step != state.global_step and state.is_world_process_zero and model is not None:
            from airflowdsl.train.huggingface_checkpoint import HuggingFaceCheckpoint

            tokenizer = processing_class if hasattr(processing_class, "save_pretrained") else None
            ckpt = HuggingFaceCheckpoint.from_model(model, tokenizer)
        self._report(state, ckpt)


def train_per_worker(trainer_init_per_worker: Callable[..., Any], config: dict[str, Any]) -> None:
    """The ``train_loop_per_worker`` of ``HuggingFaceTrainer``."""
    sess = air_session.get_session()
    shards = sess.dataset_shards if sess is not None else {}
    train = ShardDataset.from_shard(shards["train"])
    evaluation = ShardDataset.from_shard(shards["evaluation"]) if "evaluation" in shards else None
    trainer = trainer_init_per_worker(train, evaluation, **config)
    if not isinstance(trainer, transformers.Trainer):
        raise TypeError(f"trainer_init_per_worker must return a transformers.Trainer, "
                        f"got {type(trainer).__name__}")
    prepare_trainer(trainer)
    trainer.add_callback(SessionReportCallback())
    ckpt = air_session.get_checkpoint()
    trainer.train(resume_from_checkpoint=ckpt.path if ckpt is not None else None)


__all__ = ["SessionReportCallback", "ShardDataset", "prepare_trainer", "train_per_worker"]
