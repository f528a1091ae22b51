"""Sentiment classification with HuggingFaceTrainer: a tiny BERT, 2 DDP workers, no downloads.

    python examples/huggingface_trainer.py [--workers 2] [--epochs 2] [--rows 1024]

The data is generated: short sentences of filler words plus one sentiment word; the
label says whether that word is positive. The tokenizer is a ``BertTokenizerFast`` built
from an in-memory vocabulary and the model a ``BertForSequenceClassification`` made from
a small ``BertConfig`` (hidden size 32, 2 layers), so nothing is fetched from the Hub
(``HF_HUB_OFFLINE=1``). Each worker's ``trainer_init_per_worker`` gets its shard of
``train`` / ``evaluation`` as a torch Dataset of rows, tokenizes it with ``.map`` and
returns a ``transformers.Trainer``; HF's per-epoch logs and checkpoints come back as
reports and Checkpoints, and ``HuggingFacePredictor`` then labels held-out sentences.
Starts a local Ray (``num_cpus=2``) when none is running.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
from typing import Any

import pandas as pd
import ray

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the workers get the driver's HF_* variables

from airflowdsl.air import RunConfig, ScalingConfig  # noqa: E402
from airflowdsl.train.batch_predictor import BatchPredictor  # noqa: E402
from airflowdsl.train.huggingface import HuggingFacePredictor, HuggingFaceTrainer  # noqa: E402

POSITIVE = ["good", "great", "happy", "love"]
NEGATIVE = ["bad", "sad", "awful", "hate"]
FILLER = ["the", "a", "movie", "was", "it", "day", "food", "very", "and", "i"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]


def make_texts(n: int, seed: int) -> pd.DataFrame:
    """``n`` sentences (``text``) with ``label`` 1 when their sentiment word is positive."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.random() < 0.5
        words = [*rng.choices(FILLER, k=4), rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": int(label)})
    return pd.DataFrame(rows)


def make_tokenizer() -> Any:
    from transformers import BertTokenizerFast

    # transformers 5.24: BertTokenizerFast(vocab_file=...) maps every token to [UNK];
    # a vocab dict works
    return BertTokenizerFast(vocab={word: i for i, word in enumerate(VOCAB)})


def trainer_init(train: Any, evaluation: Any, *, lr: float = 3e-3, epochs: int = 2,
                 output_dir: str, **training_args: Any) -> Any:
    """``trainer_init_per_worker``: this worker's shards in, a ``transformers.Trainer`` out.

    ``training_args`` override the ``TrainingArguments`` below.
    """
    import transformers as tf

    tf.set_seed(0)  # the same initial weights on every rank
    tokenizer = make_tokenizer()

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        return {**tokenizer(row["text"]), "labels": int(row["label"])}

    model = tf.BertForSequenceClassification(tf.BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=2))
    args = tf.TrainingArguments(**{
        "output_dir": output_dir, "num_train_epochs": epochs, "learning_rate": lr,
        "per_device_train_batch_size": 16, "eval_strategy": "epoch", "save_strategy": "epoch",
        "logging_strategy": "epoch", "report_to": [], "use_cpu": True, "seed": 0,
        "disable_tqdm": True,
        "ddp_find_unused_parameters": False,  # BERT uses every parameter: skip DDP's extra pass
        # transformers 5.x multiplies the loss of models that ignore num_items_in_batch
        # (BERT classification) by the world size under DDP; off = the usual mean loss
        "average_tokens_across_devices": False,
        **training_args})
    return tf.Trainer(model=model, args=args, train_dataset=train.map(encode),
                      eval_dataset=evaluation.map(encode),
                      data_collator=tf.DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=1024)
    args = parser.parse_args()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)

    with tempfile.TemporaryDirectory(prefix="airflowdsl-example-") as storage:
        result = HuggingFaceTrainer(
            trainer_init,
            datasets={"train": ray.data.from_pandas(make_texts(args.rows, 0)),
                      "evaluation": ray.data.from_pandas(make_texts(128, 1))},
            trainer_init_config={"epochs": args.epochs, "output_dir": f"{storage}/hf"},
            scaling_config=ScalingConfig(num_workers=args.workers),
            run_config=RunConfig(name="hf_sentiment", storage_path=storage),
        ).fit()
        per_epoch = result.metrics_dataframe.dropna(subset=["eval_loss"])
        print(per_epoch.drop_duplicates("epoch")[["epoch", "step", "loss", "eval_loss"]]
              .to_string(index=False))

        test = make_texts(200, 2)
        scored = BatchPredictor.from_checkpoint(result.checkpoint, HuggingFacePredictor).predict(
            ray.data.from_pandas(test), feature_columns=["text"], keep_columns=["label"],
        ).to_pandas()
        accuracy = float((scored["predictions"] == scored["label"]).mean())
        print(f"held-out accuracy: {accuracy:.3f} on {len(scored)} sentences "
              f"(checkpoint {result.checkpoint.path})")


if __name__ == "__main__":
    main()
