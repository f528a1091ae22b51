"""PyTorch on the shared runtime: ``TorchTrainer`` (DDP over torch.distributed) and helpers.

``import torch`` below is the real PyTorch: imports are absolute, so this module's own
name never shadows it. PyTorch itself is imported lazily (inside functions), so
``import airflowdsl.train.torch`` works without it; constructing a ``TorchTrainer``
then says what to install.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from airflowdsl.air import session as air_session
from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import RunConfig, ScalingConfig
from airflowdsl.train.backend import Backend
from airflowdsl.train.torch_checkpoint import TorchCheckpoint, TorchPredictor
from airflowdsl.train.trainer import DataParallelTrainer

if TYPE_CHECKING:
    import torch

    from airflowdsl.train.worker_group import WorkerGroup

INSTALL_HINT = "PyTorch is not installed: pip install 'airflowdsl[torch]'"


def require_torch() -> None:
    """Raise one clear ImportError when PyTorch is missing."""
    if importlib.util.find_spec("torch") is None:
        raise ImportError(INSTALL_HINT)


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TorchConfig:
    """How the workers join one ``torch.distributed`` process group.

    ``backend=None`` picks ``nccl`` with GPUs and ``gloo`` without; ``init_method`` is
    ``env`` (MASTER_ADDR/MASTER_PORT) or ``tcp`` (``tcp://addr:port``).
    """

    backend: Literal["gloo", "nccl", "mpi"] | None = None
    init_method: Literal["env", "tcp"] = "env"
    timeout_s: float = Field(default=1800.0, gt=0)


class TorchBackend(Backend):
    """Sets up (and tears down) the process group on every worker, all in parallel."""

    def __init__(self, config: TorchConfig | None = None) -> None:
        self.config = config or TorchConfig()
        self.devices: list[str] = []

    def on_start(self, group: WorkerGroup, scaling: ScalingConfig) -> None:
        backend = self.config.backend or ("nccl" if scaling.use_gpu else "gloo")
        addr, port = group.infos[0]["ip"], group.free_port(0)
        visible = _visible_gpus(group.infos) if scaling.use_gpu else [None] * len(group)
        args = [
            (backend, self.config.init_method, addr, port, rank, len(group),
             self.config.timeout_s, visible[rank], info["gpu_ids"])
            for rank, info in enumerate(group.infos)
        ]
        self.devices = group.execute_each(_init_process_group, args)

    def on_shutdown(self, group: WorkerGroup) -> None:
        group.execute(_destroy_process_group)

    def session_extras(self, rank: int, scaling: ScalingConfig) -> dict[str, Any]:
        extras: dict[str, Any] = {"use_gpu": scaling.use_gpu}
        if rank < len(self.devices):
            extras["device"] = self.devices[rank]
        return extras


def _visible_gpus(infos: list[dict[str, Any]]) -> list[str]:
    """Per worker: every GPU of its node, so local ranks index them (as Ray Train does)."""
    by_node: dict[str, set[str]] = {}
    for info in infos:
        by_node.setdefault(info["node_id"], set()).update(info["gpu_ids"])
    return [",".join(sorted(by_node[info["node_id"]], key=_gpu_key)) for info in infos]


def _gpu_key(gpu_id: str) -> tuple[int, str]:
    return (int(gpu_id), "") if gpu_id.isdigit() else (1 << 30, gpu_id)


def _init_process_group(backend: str, init_method: str, addr: str, port: int, rank: int,
                        world_size: int, timeout_s: float, visible: str | None,
                        gpu_ids: list[str]) -> str:
    """On a worker: choose its device, then join the process group; returns the device."""
    device = "cpu"
    if visible is not None:  # before anything initialises CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
        order = sorted(visible.split(","), key=_gpu_key)
        device = f"cuda:{order.index(gpu_ids[0])}" if gpu_ids else "cuda:0"
    import torch
    import torch.distributed as dist

    if device != "cpu":
        torch.cuda.set_device(torch.device(device))
    os.environ.update({"MASTER_ADDR": addr, "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world_size)})
    url = "env://" if init_method == "env" else f"tcp://{addr}:{port}"
    dist.init_process_group(backend=backend, init_method=url, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return device


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class TorchTrainer(DataParallelTrainer):
    """Data-parallel PyTorch: ``train_loop_per_worker`` runs on every worker (AIR shape)."""

    backend_cls = TorchBackend

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: dict[str, Any] | None = None,
        torch_config: TorchConfig | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict[str, Any] | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
        dataset_config: dict[str, Any] | None = None,
    ) -> None:
        require_torch()
        if torch_config is not None and not isinstance(torch_config, TorchConfig):
            raise TypeError(f"torch_config must be a TorchConfig, got {type(torch_config).__name__}")
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config,
                         backend_config=torch_config, scaling_config=scaling_config,
                         run_config=run_config, datasets=datasets,
                         resume_from_checkpoint=resume_from_checkpoint,
                         dataset_config=dataset_config)

    def make_backend(self) -> Backend:
        return TorchBackend(self.backend_config)


# --- helpers used inside train_loop_per_worker ---------------------------------------------
def get_device() -> torch.device:
    """This worker's device: its GPU when ``use_gpu=True``, else the CPU."""
    import torch

    sess = air_session.get_session()
    extras = sess.extras if sess is not None else {}
    if "device" in extras:
        return torch.device(extras["device"])
    if extras.get("use_gpu") and torch.cuda.is_available():
        local_rank = sess.local_rank if sess is not None else 0
        return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


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
        return getattr(self.loader, name)


def _to_device(batch: Any, device: torch.device) -> Any:
    if hasattr(batch, "to"):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


__all__ = [
    "TorchBackend",
    "TorchCheckpoint",
    "TorchConfig",
    "TorchPredictor",
    "TorchTrainer",
    "get_device",
    "prepare_data_loader",
    "prepare_model",
    "require_torch",
]
