"""HuggingFaceTrainer: a tiny BERT on a generated sentiment task, 2 DDP workers, no downloads.

The task (data, tokenizer, ``trainer_init``) is the one of ``examples/huggingface_trainer.py``,
loaded from its file and pickled by value, so the Ray workers need not import it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from ray import cloudpickle  # Ray's own copy: the one that pickles task arguments

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # forwarded to the workers by the backend

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

_spec = importlib.util.spec_from_file_location(
    "hf_example", Path(__file__).resolve().parents[2] / "examples" / "huggingface_trainer.py")
example = sys.modules["hf_example"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)
cloudpickle.register_pickle_by_value(example)


@pytest.mark.integration
def test_hf_trainer_two_workers_learns_and_checkpoints(ray_session, tmp_path):
    import ray
    from transformers import BertForSequenceClassification

    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.batch_predictor import BatchPredictor
    from airflowdsl.train.huggingface import (
        HuggingFaceCheckpoint,
        HuggingFacePredictor,
        HuggingFaceTrainer,
    )

    result = HuggingFaceTrainer(
        example.trainer_init,
        datasets={"train": ray.data.from_pandas(example.make_texts(1024, 0)),
                  "evaluation": ray.data.from_pandas(example.make_texts(128, 1))},
        trainer_init_config={"lr": 3e-3, "output_dir": str(tmp_path / "hf")},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=str(tmp_path)),
    ).fit()

    history = result.metrics_dataframe
    per_epoch = history.dropna(subset=["eval_loss"]).drop_duplicates("epoch")
    assert list(per_epoch["epoch"]) == [1.0, 2.0]  # one report per epoch (+ the final summary)
    assert per_epoch["eval_loss"].iloc[1] < per_epoch["eval_loss"].iloc[0]
    # each worker trained on its own 512 rows: 32 steps of 16 per epoch, not 16 (no re-sharding)
    assert list(per_epoch["step"]) == [32, 64]
    assert "train_loss" in result.metrics and result.metrics["epoch"] == 2.0

    ckpt = HuggingFaceCheckpoint.from_checkpoint(result.checkpoint)
    model = ckpt.get_model(BertForSequenceClassification)
    assert model.config.hidden_size == 32
    assert ckpt.get_tokenizer().convert_tokens_to_ids("good") == example.VOCAB.index("good")

    test = example.make_texts(64, 2)
    predictor = HuggingFacePredictor.from_checkpoint(result.checkpoint, BertForSequenceClassification)
    local = predictor.predict(test[["text"]])["predictions"]
    assert (local == test["label"]).mean() > 0.8
    batch = BatchPredictor.from_checkpoint(result.checkpoint, HuggingFacePredictor,
                                           model_cls=BertForSequenceClassification)
    scored = batch.predict(ray.data.from_pandas(test), feature_columns=["text"],
                           keep_columns=["label"]).to_pandas()
    assert len(scored) == 64 and (scored["predictions"] == scored["label"]).mean() > 0.8


@pytest.mark.integration
def test_hf_trainer_local_mode_saves_final_model(ray_session, tmp_path):
    """num_workers=0 runs in this process; with save_strategy="no" the final model is kept."""
    import ray

    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.huggingface import HuggingFaceCheckpoint, HuggingFaceTrainer

    result = HuggingFaceTrainer(
        example.trainer_init,
        datasets={"train": ray.data.from_pandas(example.make_texts(64, 0)),
                  "evaluation": ray.data.from_pandas(example.make_texts(32, 1))},
        trainer_init_config={"epochs": 1, "output_dir": str(tmp_path / "hf"),
                             "save_strategy": "no"},
        scaling_config=ScalingConfig(num_workers=0),
        run_config=RunConfig(storage_path=str(tmp_path)),
    ).fit()
    # the last epoch's logs and HF's summary share the final report (nothing came between)
    assert len(result.metrics_dataframe) == 1
    assert {"eval_loss", "train_loss", "step"} <= set(result.metrics)
    assert result.metrics["step"] == 4  # 64 rows / 16, nothing split
    model = HuggingFaceCheckpoint.from_checkpoint(result.checkpoint).get_model()
    assert type(model).__name__ == "BertForSequenceClassification"
