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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import RunConfig, ScalingConfig
from airflowdsl.train.backend import Backend
from airflowdsl.train.torch_checkpoint import TorchCheckpoint, TorchPredictor
from airflowdsl.train.torch_prepare import (
    PreparedLoader,
    get_device,
    prepare_data_loader,
    prepare_model,
)
from airflowdsl.train.trainer import DataParallelTrainer

if TYPE_CHECKING:
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

    #: torch starts loading while the actor starts up (see Backend.worker_imports)
    worker_imports: tuple[str, ...] = ("torch", "torch.distributed", "torch.nn.parallel")

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
        if not gpu_ids:
            raise RuntimeError(f"use_gpu=True, but Ray gave worker rank {rank} no GPU (check "
                               f"ScalingConfig.resources_per_worker['GPU'])")
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
        device = f"cuda:{visible.split(',').index(gpu_ids[0])}"
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


def to_air_checkpoint(model: Any, preprocessor: Any = None) -> TorchCheckpoint:
    """AIR 2.0/2.1's ``ray.train.torch.to_air_checkpoint``: the module (DDP unwrapped) and
    the preprocessor, if any, in a new ``TorchCheckpoint``."""
    checkpoint = TorchCheckpoint.from_model(model)
    if preprocessor is not None:
        checkpoint.set_preprocessor(preprocessor)
    return checkpoint


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
        preprocessor: Any = None,
    ) -> None:
        require_torch()
        if torch_config is not None and not isinstance(torch_config, TorchConfig):
            raise TypeError(f"torch_config must be a TorchConfig, got {type(torch_config).__name__}")
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config,
                         backend_config=torch_config, scaling_config=scaling_config,
                         run_config=run_config, datasets=datasets,
                         resume_from_checkpoint=resume_from_checkpoint,
                         dataset_config=dataset_config, preprocessor=preprocessor)

    def make_backend(self) -> Backend:
        backend = TorchBackend(self.backend_config)
        if self.scaling_config.num_workers > 1:
            # DistributedDataParallel.__init__ imports torch._dynamo (~850 modules, seconds
            # of CPU); loading it early overlaps that with start-up instead of the loop.
            backend.worker_imports = (*backend.worker_imports, "torch._dynamo")
        return backend


__all__ = [
    "PreparedLoader",
    "TorchBackend",
    "TorchCheckpoint",
    "TorchConfig",
    "TorchPredictor",
    "TorchTrainer",
    "get_device",
    "prepare_data_loader",
    "prepare_model",
    "require_torch",
    "to_air_checkpoint",
]
