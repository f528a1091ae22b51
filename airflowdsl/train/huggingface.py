"""HuggingFace transformers on the shared runtime: ``HuggingFaceTrainer`` and friends.

The user's ``trainer_init_per_worker(train_dataset, eval_dataset, **config)`` builds a
``transformers.Trainer`` on every worker; it trains under torch DDP on the actor group
(``TorchBackend`` joins the process group, this backend adds the env vars accelerate
reads). The worker-side glue (shard datasets, report callback) lives in
``huggingface_worker``; transformers, accelerate and torch are imported lazily.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import RunConfig, ScalingConfig
from airflowdsl.train.backend import Backend
from airflowdsl.train.huggingface_checkpoint import HuggingFaceCheckpoint
from airflowdsl.train.predictor import Predictor
from airflowdsl.train.torch import TorchBackend
from airflowdsl.train.trainer import DataParallelTrainer

if TYPE_CHECKING:
    from airflowdsl.train.worker_group import WorkerGroup

INSTALL_HINT = ("HuggingFaceTrainer needs transformers, accelerate and torch: "
                "pip install 'airflowdsl[huggingface]'")
DATASET_KEYS = ("train", "evaluation")
#: driver env vars that follow the job onto the workers (offline mode, caches, ...)
_FORWARDED_ENV = ("HF_", "TRANSFORMERS_", "TOKENIZERS_")


def require_transformers() -> None:
    missing = [m for m in ("transformers", "accelerate", "torch") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")


class HuggingFaceBackend(TorchBackend):
    """``TorchBackend`` plus what accelerate/transformers read to see the DDP job.

    ``RANK``/``WORLD_SIZE``/``MASTER_*`` come from ``TorchBackend``; here each worker also
    gets ``LOCAL_RANK``/``LOCAL_WORLD_SIZE``/``NODE_RANK``, and either
    ``ACCELERATE_TORCH_DEVICE`` (its GPU, as ``TorchBackend`` picked it) or, without GPUs,
    ``ACCELERATE_USE_CPU=true`` (else accelerate sees no DDP job on CPUs and every worker
    trains alone).
    """

    def __init__(self) -> None:
        super().__init__()
        self.worker_env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV)}

    def on_start(self, group: WorkerGroup, scaling: ScalingConfig) -> None:
        super().on_start(group, scaling)
        group.execute_each(_set_env, [(self._env(rank, info, scaling),)
                                      for rank, info in enumerate(group.infos)])

    def _env(self, rank: int, info: dict[str, Any], scaling: ScalingConfig) -> dict[str, str]:
        env = {"LOCAL_RANK": str(info["local_rank"]),
               "LOCAL_WORLD_SIZE": str(info["local_world_size"]),
               "NODE_RANK": str(info["node_rank"])}
        if scaling.use_gpu and rank < len(self.devices):
            env["ACCELERATE_TORCH_DEVICE"] = self.devices[rank]  # the GPU TorchBackend chose
        else:
            env["ACCELERATE_USE_CPU"] = "true"
        return env


def _set_env(env: dict[str, str]) -> None:
    os.environ.update(env)


class HuggingFaceTrainer(DataParallelTrainer):
    """Data-parallel ``transformers.Trainer`` (the AIR HuggingFaceTrainer shape).

    ``datasets`` takes ``"train"`` and optionally ``"evaluation"``; both are split across
    the workers, materialized on each worker as a map-style torch ``Dataset`` of row dicts
    (``huggingface_worker.ShardDataset``) and given to ``trainer_init_per_worker``, whose
    ``Trainer`` then uses them without sharding again. Every HF log becomes a
    ``session.report``; every HF checkpoint (and the final model) becomes a Checkpoint.
    """

    backend_cls = HuggingFaceBackend
    split_datasets = DATASET_KEYS

    def __init__(
        self,
        trainer_init_per_worker: Callable[..., Any],
        *,
        datasets: dict[str, Any],
        trainer_init_config: dict[str, Any] | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
        preprocessor: Any = None,
    ) -> None:
        require_transformers()
        if not callable(trainer_init_per_worker):
            raise TypeError("trainer_init_per_worker must be a function "
                            "(train_dataset, eval_dataset, **config) -> transformers.Trainer")
        unknown = sorted(set(datasets or {}) - set(DATASET_KEYS))
        if "train" not in (datasets or {}) or unknown:
            raise KeyError(f"HuggingFaceTrainer takes datasets 'train' (required) and "
                           f"'evaluation'; got {sorted(datasets or {})}")
        self.trainer_init_per_worker = trainer_init_per_worker
        self.trainer_init_config = dict(trainer_init_config or {})
        loop = functools.partial(_hf_train_loop, trainer_init_per_worker)
        super().__init__(loop, train_loop_config=self.trainer_init_config,
                         scaling_config=scaling_config, run_config=run_config,
                         datasets=datasets, resume_from_checkpoint=resume_from_checkpoint,
                         preprocessor=preprocessor)

    def make_backend(self) -> Backend:
        return HuggingFaceBackend()


def _hf_train_loop(trainer_init_per_worker: Callable[..., Any], config: dict[str, Any]) -> None:
    from airflowdsl.train.huggingface_worker import train_per_worker

    train_per_worker(trainer_init_per_worker, config)


class HuggingFacePredictor(Predictor):
    """Classifies pandas batches of text: tokenizer → model → argmax of the logits."""

    def __init__(self, model: Any, tokenizer: Any, *, use_gpu: bool = False) -> None:
        import torch

        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, model_cls: Any = None, tokenizer: Any = None,
                        *, use_gpu: bool = False, **kwargs: Any) -> HuggingFacePredictor:
        """``tokenizer``: an instance, a tokenizer class, or None (the checkpoint's own);
        ``**kwargs`` go to the model class's ``from_pretrained``."""
        ckpt = HuggingFaceCheckpoint.from_checkpoint(checkpoint)
        if tokenizer is None or isinstance(tokenizer, type):
            tokenizer = ckpt.get_tokenizer(tokenizer)
        return cls(ckpt.get_model(model_cls, **kwargs), tokenizer, use_gpu=use_gpu)

    def _predict_pandas(self, data: pd.DataFrame, feature_columns: list[str] | None = None,
                        text_column: str | None = None, max_length: int = 512,
                        return_logits: bool = False) -> pd.DataFrame:
        """``text_column`` (or the first of AIR's ``feature_columns``; default: the first
        column) holds the texts; ``max_length`` truncates the tokens; ``return_logits``
        adds a ``logits`` column next to the argmax ``predictions``."""
        import torch

        column = text_column or (feature_columns[0] if feature_columns else data.columns[0])
        texts = data[column].astype(str).tolist()
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                             return_tensors="pt").to(self.device)
        with torch.no_grad():
            logits = self.model(**enc).logits.cpu().numpy()
        out = pd.DataFrame({"predictions": np.argmax(logits, axis=-1)})
        if return_logits:
            out["logits"] = list(logits)
        return out


__all__ = [
    "HuggingFaceBackend",
    "HuggingFaceCheckpoint",
    "HuggingFacePredictor",
    "HuggingFaceTrainer",
    "require_transformers",
]
