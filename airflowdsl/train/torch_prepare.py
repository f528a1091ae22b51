"""Helpers for ``train_loop_per_worker`` under ``TorchTrainer`` (the AIR names).

``get_device``, ``prepare_model`` (DDP/FSDP) and ``prepare_data_loader``
(``DistributedSampler``); re-exported by ``airflowdsl.train.torch``. PyTorch is imported
inside the functions, so this module loads without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from airflowdsl.air import session as air_session

if TYPE_CHECKING:
    import torch


def get_device() -> torch.device:
    """This worker's device: its GPU when ``use_gpu=True``, else the CPU."""
    device: torch.device = air_session.torch_device()
    return device


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def prepare_model(model: torch.nn.Module, *, move_to_device: bool = True,
                  parallel_strategy: Literal["ddp", "fsdp"] | None = "ddp",
                  parallel_strategy_kwargs: dict[str, Any] | None = None) -> torch.nn.Module:
    """Move ``model`` to this worker's device and wrap it in DDP (a no-op for one worker)."""
    device = get_device()
    if move_to_device:
        model = model.to(device)
    if parallel_strategy is None or not _distributed():
        return model
    kwargs = dict(parallel_strategy_kwargs or {})
    if parallel_strategy == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel(model, **kwargs)
    if parallel_strategy != "ddp":
        raise ValueError(f"parallel_strategy must be 'ddp', 'fsdp' or None, got {parallel_strategy!r}")
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        kwargs.setdefault("device_ids", [device])
        kwargs.setdefault("output_device", device)
    return DistributedDataParallel(model, **kwargs)


def prepare_data_loader(loader: Any, *, add_dist_sampler: bool = True,
                        move_to_device: bool = True) -> Any:
    """Give each worker its own part of ``loader``'s dataset (a ``DistributedSampler``).

    The returned loader calls ``sampler.set_epoch`` on every new pass (so shuffling
    differs between epochs) and, on a GPU, moves each batch to the worker's device.
    """
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    if add_dist_sampler and _distributed() and not isinstance(loader.sampler, DistributedSampler):
        if loader.batch_size is None:
            raise ValueError("prepare_data_loader cannot shard a DataLoader built with a custom "
                             "batch_sampler; pass add_dist_sampler=False and shard it yourself")
        sampler: Any = DistributedSampler(loader.dataset,
                                          shuffle=isinstance(loader.sampler, RandomSampler))
        extra = ({"prefetch_factor": loader.prefetch_factor,
                  "persistent_workers": loader.persistent_workers} if loader.num_workers else {})
        loader = DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                            num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                            pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                            timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                            generator=loader.generator, **extra)
    device = get_device() if move_to_device else None
    if isinstance(loader.sampler, DistributedSampler) or (device is not None and device.type != "cpu"):
        return PreparedLoader(loader, device if device is not None and device.type != "cpu" else None)
    return loader


class PreparedLoader:
    """A DataLoader that advances its sampler's epoch and moves batches to a device."""

    def __init__(self, loader: Any, device: torch.device | None) -> None:
        self.loader = loader
        self.device = device
        self._epoch = 0

    def __iter__(self) -> Iterator[Any]:
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(self._epoch)
        self._epoch += 1
        for batch in self.loader:
            yield batch if self.device is None else _to_device(batch, self.device)

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (copy/unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


def _to_device(batch: Any, device: torch.device) -> Any:
    if hasattr(batch, "to"):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


__all__ = ["PreparedLoader", "get_device", "prepare_data_loader", "prepare_model"]
