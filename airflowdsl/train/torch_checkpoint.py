"""``TorchCheckpoint`` (a model or state dict in ``model.pt``) and ``TorchPredictor``.

PyTorch is imported lazily, so this module loads without it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import cloudpickle
import numpy as np
import pandas as pd

from airflowdsl.air.checkpoint import Checkpoint, new_tempdir
from airflowdsl.train.predictor import Predictor

if TYPE_CHECKING:
    import torch

MODEL_FILE = "model.pt"


def _unwrap(model: Any) -> Any:
    """The plain module inside a DDP/FSDP wrapper."""
    return getattr(model, "module", model)


class TorchCheckpoint(Checkpoint):
    """A checkpoint holding a ``torch.nn.Module`` or a state dict (AIR's TorchCheckpoint).

    ``get_model()`` also reads dict checkpoints with a ``"model"`` key, the usual AIR
    pattern ``Checkpoint.from_dict({"model": model.state_dict(), ...})``.
    """

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> TorchCheckpoint:
        """The whole module (DDP unwrapped), pickled with cloudpickle so local classes load."""
        return cls._save(_unwrap(model))

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Any]) -> TorchCheckpoint:
        return cls._save(state_dict)

    @classmethod
    def _save(cls, obj: Any) -> TorchCheckpoint:
        import torch

        path = new_tempdir()
        torch.save(obj, os.path.join(path, MODEL_FILE), pickle_module=cloudpickle)
        return cls(path)

    def _load(self) -> Any:
        import torch

        model_path = os.path.join(self.path, MODEL_FILE)
        if os.path.exists(model_path):
            return torch.load(model_path, map_location="cpu", weights_only=False)
        data = self.to_dict()
        if "model" not in data:
            raise ValueError(f"{self!r} holds neither {MODEL_FILE} nor a dict with a 'model' key "
                             f"(keys: {sorted(data)})")
        return data["model"]

    def get_model(self, model: torch.nn.Module | None = None) -> torch.nn.Module:
        """The saved module; or ``model`` with the saved weights loaded into it.

        A state-dict checkpoint needs ``model`` (the architecture to load into).
        """
        import torch

        saved = self._load()
        if isinstance(saved, torch.nn.Module):
            if model is None:
                return saved
            saved = saved.state_dict()
        if model is None:
            raise ValueError("this checkpoint holds a state dict: pass model=<an instance of the "
                             "architecture> to load it into")
        _unwrap(model).load_state_dict(_strip_ddp_prefix(saved))
        return model


def _strip_ddp_prefix(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A state dict saved from a DDP-wrapped model has every key under ``module.``."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


class TorchPredictor(Predictor):
    """Scores pandas/numpy batches with a torch model (features → one float32 tensor)."""

    def __init__(self, model: torch.nn.Module, *, use_gpu: bool = False) -> None:
        import torch

        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, model: torch.nn.Module | None = None,
                        *, use_gpu: bool = False) -> TorchPredictor:
        """The checkpoint's model (``model``: a module to load a saved state dict into);
        ``use_gpu`` scores on CUDA when there is one."""
        return cls(TorchCheckpoint.from_checkpoint(checkpoint).get_model(model), use_gpu=use_gpu)

    def _predict_pandas(self, data: pd.DataFrame, dtype: Any = None) -> pd.DataFrame:
        """``dtype``: the torch dtype of the input tensor (default ``torch.float32``)."""
        import warnings

        import torch

        with torch.no_grad(), warnings.catch_warnings():
            # a block read zero-copy from the object store is read-only; the model only reads it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            inputs = torch.as_tensor(_features(data), dtype=dtype or torch.float32)
            out = self.model(inputs.to(self.device)).detach().cpu().numpy()
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        return pd.DataFrame({"predictions": list(out) if out.ndim > 1 else out})


def _features(data: pd.DataFrame) -> np.ndarray:
    """One 2-D array: the columns side by side, or one column holding arrays stacked."""
    if data.shape[1] == 1 and pd.api.types.is_object_dtype(data.dtypes.iloc[0]):
        return np.stack([np.asarray(v, dtype=np.float32) for v in data.iloc[:, 0]])
    return data.to_numpy(dtype=np.float32)


__all__ = ["TorchCheckpoint", "TorchPredictor"]
