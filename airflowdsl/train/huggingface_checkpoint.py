"""``HuggingFaceCheckpoint``: a ``save_pretrained`` directory.

In its own module (like ``torch_checkpoint.py``) so that the worker side
(``huggingface_worker.py``) and the trainer module both import it, and neither imports
the other. transformers is imported lazily.
"""

from __future__ import annotations

from typing import Any

from airflowdsl.air.checkpoint import Checkpoint, new_tempdir


class HuggingFaceCheckpoint(Checkpoint):
    """A ``save_pretrained`` directory (an HF ``checkpoint-N`` or a saved final model)."""

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any = None) -> HuggingFaceCheckpoint:
        path = new_tempdir()
        getattr(model, "module", model).save_pretrained(path)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        return cls(path)

    def get_model(self, model_cls: Any = None, **pretrained_kwargs: Any) -> Any:
        """``model_cls.from_pretrained(path)``; ``AutoModelForSequenceClassification`` by default."""
        if model_cls is None:
            from transformers import AutoModelForSequenceClassification as model_cls
        return model_cls.from_pretrained(self.path, **pretrained_kwargs)

    def get_tokenizer(self, tokenizer_cls: Any = None, **pretrained_kwargs: Any) -> Any:
        """The tokenizer saved beside the model (``AutoTokenizer`` by default)."""
        if tokenizer_cls is None:
            from transformers import AutoTokenizer as tokenizer_cls
        return tokenizer_cls.from_pretrained(self.path, **pretrained_kwargs)


__all__ = ["HuggingFaceCheckpoint"]
