"""``TensorflowCheckpoint``: a Keras model in a checkpoint directory.

In its own module (like ``torch_checkpoint.py``) so that the worker-side callback
(``tensorflow_callback.py``) and the trainer module both import it, and neither imports
the other. TensorFlow is imported lazily.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from typing import Any

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.train.tensorflow_keras import is_keras3_model

INSTALL_HINT = "pip install 'airflowdsl[tensorflow]' && pip install --no-deps tf-keras==2.21.0"
MODEL_FILE = "model.keras"


def require_package(module: str, what: str) -> None:
    """Raise ``ImportError`` naming the install command when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the {module!r} package, which is not installed: "
                          f"{INSTALL_HINT}")


class TensorflowCheckpoint(Checkpoint):
    """A Keras model in a checkpoint directory (``model.keras``, a SavedModel or an .h5)."""

    @classmethod
    def from_model(cls, model: Any, *, metadata: dict[str, Any] | None = None) -> TensorflowCheckpoint:
        """Save a tf-keras or Keras 3 model (the ``.keras`` format) into a new checkpoint."""
        path = tempfile.mkdtemp(prefix="airflowdsl-tf-")
        model.save(os.path.join(path, MODEL_FILE))
        ckpt = cls(path)
        ckpt.update_metadata({**(metadata or {}), "keras": _flavour(model), "model": MODEL_FILE})
        return ckpt

    @classmethod
    def from_saved_model(cls, directory: str | os.PathLike[str]) -> TensorflowCheckpoint:
        """A checkpoint holding a copy of a tf-keras SavedModel directory."""
        path = tempfile.mkdtemp(prefix="airflowdsl-tf-")
        shutil.copytree(directory, os.path.join(path, "saved_model"))
        ckpt = cls(path)
        ckpt.update_metadata({"keras": "tf_keras", "model": "saved_model"})
        return ckpt

    @classmethod
    def from_h5(cls, file: str | os.PathLike[str]) -> TensorflowCheckpoint:
        path = tempfile.mkdtemp(prefix="airflowdsl-tf-")
        shutil.copy(file, os.path.join(path, "model.h5"))
        ckpt = cls(path)
        ckpt.update_metadata({"keras": "tf_keras", "model": "model.h5"})
        return ckpt

    def get_model(self, model: Any = None, *, model_definition: Any = None,
                  custom_objects: dict[str, Any] | None = None, compile: bool = True) -> Any:
        """The saved model. With ``model`` (a model, or as in AIR a function or Keras
        model class that builds one) or AIR's ``model_definition=`` (the same), the saved
        weights are loaded into that model instead; either Keras may load the other's
        ``.keras`` weights."""
        meta = self.get_metadata()
        target = os.path.join(self.path, meta.get("model", MODEL_FILE))
        if not os.path.exists(target):
            raise FileNotFoundError(f"{self!r} holds no Keras model ({target} is missing)")
        definition = model_spec(model, model_definition)
        if definition is not None:
            built = build_model(definition)
            built.load_weights(_weights_file(target))
            return built
        if meta.get("keras") == "keras3":
            import keras
        else:
            require_package("tf_keras", "TensorflowCheckpoint.get_model")
            import tf_keras as keras
        return keras.models.load_model(target, custom_objects=custom_objects, compile=compile)


def model_spec(model: Any, model_definition: Any) -> Any:
    """The one of ``model`` / ``model_definition`` given (None: neither); ``TypeError``
    for both, or for something that is neither a Keras model nor a callable building one."""
    if model is not None and model_definition is not None:
        raise TypeError("pass model or model_definition, not both (AIR's model_definition is "
                        "a function or Keras model class returning the model to load into)")
    spec = model if model is not None else model_definition
    if spec is not None and not callable(spec):
        raise TypeError(f"model_definition must be a Keras model, a Keras model class or a "
                        f"function returning a model; got {type(spec).__name__}")
    return spec


def build_model(spec: Any) -> Any:
    """A Keras model from a model (as is), a Keras model class or a function (called)."""
    if isinstance(spec, type) or not hasattr(spec, "load_weights"):
        built = spec()
        if not hasattr(built, "load_weights"):
            raise TypeError(f"model_definition returned {type(built).__name__}, not a Keras "
                            "model")
        return built
    return spec


def _weights_file(target: str) -> str:
    """``target``, or a copy named ``model.h5`` when it is an HDF5 file under a ``.keras``
    name (tf-keras writes HDF5 there under MultiWorkerMirroredStrategy, and either Keras's
    ``load_weights`` picks its reader by the suffix: a ``.keras`` one expects a zip)."""
    if os.path.isfile(target) and not target.endswith(".h5"):
        with open(target, "rb") as f:
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                copy = os.path.join(tempfile.mkdtemp(prefix="airflowdsl-tf-"), "model.h5")
                shutil.copyfile(target, copy)
                return copy
    return target


def _flavour(model: Any) -> str:
    return "keras3" if is_keras3_model(model) else "tf_keras"


__all__ = ["INSTALL_HINT", "MODEL_FILE", "TensorflowCheckpoint", "build_model", "model_spec",
           "require_package"]
