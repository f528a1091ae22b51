"""Sentence sentiment with HuggingFaceTrainer: a tiny BERT from a config, no downloads.

    make_sentences -> split (train/evaluation/test) -> fit (2-worker HuggingFaceTrainer,
      DDP; the tokenizer is saved beside the model) -> predict (BatchPredictor with
      HuggingFacePredictor on held-out sentences) -> evaluate

The sentences are generated: filler words plus one sentiment word; the label says whether
that word is positive. The tokenizer is a ``BertTokenizerFast`` over an in-memory
vocabulary and the model a ``BertForSequenceClassification`` made from a small
``BertConfig``, so nothing is fetched from the Hub (``HF_HUB_OFFLINE=1`` on every worker).

Run it:    airflowdsl run pipelines/text_hf.py -p epochs=3
Importing this module starts nothing (no Ray, no transformers).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

import airflowdsl as af

POSITIVE = ["good", "great", "happy", "love"]
NEGATIVE = ["bad", "sad", "awful", "hate"]
FILLER = ["the", "a", "movie", "was", "it", "day", "food", "very", "and", "i"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]


@af.ingest
def make_sentences(rows: Annotated[int, Field(gt=0)] = 1400, seed: int = 0) -> af.Dataset:
    """``rows`` sentences (``text``) with ``label`` 1 when their sentiment word is positive."""
    import random

    import pandas as pd
    import ray.data

    rng = random.Random(seed)
    frame = []
    for _ in range(rows):
        label = rng.random() < 0.5
        words = [*rng.choices(FILLER, k=4), rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        frame.append({"text": " ".join(words), "label": int(label)})
    return ray.data.from_pandas(pd.DataFrame(frame))


@af.preprocess
def split(ds: af.Dataset, seed: int = 0) -> tuple[af.Dataset, af.Dataset, af.Dataset]:
    """Train (about 1000 rows), evaluation (during training) and held-out test sentences."""
    rest, test = ds.train_test_split(test_size=200, shuffle=True, seed=seed)
    train, evaluation = rest.train_test_split(test_size=200, shuffle=True, seed=seed)
    return train, evaluation, test


def trainer_init(train: Any, evaluation: Any, *, lr: float, epochs: int) -> Any:
    """``trainer_init_per_worker``: this worker's shards in, a ``transformers.Trainer`` out."""
    import transformers as tf

    from airflowdsl.air import session

    tf.set_seed(0)  # the same initial weights on every rank
    tokenizer = tf.BertTokenizerFast(vocab={word: i for i, word in enumerate(VOCAB)})

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        return {**tokenizer(row["text"]), "labels": int(row["label"])}

    model = tf.BertForSequenceClassification(tf.BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=2))
    args = tf.TrainingArguments(
        output_dir=f"{session.get_trial_dir()}/hf",  # the step's trainer storage (per cache key)
        num_train_epochs=epochs, learning_rate=lr, per_device_train_batch_size=16,
        eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch",
        report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
        ddp_find_unused_parameters=False,
        # transformers 5.x scales the loss of models that ignore num_items_in_batch by the
        # world size under DDP; off = the usual mean loss
        average_tokens_across_devices=False)
    return tf.Trainer(model=model, args=args, train_dataset=train.map(encode),
                      eval_dataset=evaluation.map(encode),
                      data_collator=tf.DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer)


@af.train
def fit(train: af.Dataset, evaluation: af.Dataset,
        epochs: Annotated[int, Field(ge=1)] = 2, lr: Annotated[float, Field(gt=0)] = 3e-3,
        workers: Annotated[int, Field(ge=1)] = 2) -> af.Checkpoint:
    """Data-parallel fine-tuning; the last checkpoint holds the model and its tokenizer."""
    import os

    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.huggingface import HuggingFaceTrainer

    os.environ["HF_HUB_OFFLINE"] = "1"  # forwarded to the workers by the backend
    result = HuggingFaceTrainer(
        trainer_init,
        datasets={"train": train, "evaluation": evaluation},
        trainer_init_config={"lr": lr, "epochs": epochs},
        scaling_config=ScalingConfig(num_workers=workers),
        run_config=RunConfig(name="text_hf", verbose=0),
    ).fit()
    assert result.checkpoint is not None
    return result.checkpoint


@af.predict
def predict(ckpt: af.Checkpoint, test: af.Dataset) -> af.Dataset:
    """Held-out sentences labelled by BatchPredictor (the checkpoint's own tokenizer)."""
    from airflowdsl.train.batch_predictor import BatchPredictor
    from airflowdsl.train.huggingface import HuggingFacePredictor

    return BatchPredictor.from_checkpoint(ckpt, HuggingFacePredictor).predict(
        test, feature_columns=["text"], keep_columns=["text", "label"])


@af.predict
def evaluate(scored: af.Dataset) -> dict[str, float]:
    """Held-out accuracy (0.5 is chance)."""
    frame = scored.to_pandas()
    return {"accuracy": float((frame["predictions"] == frame["label"]).mean()),
            "n_test": float(len(frame))}


@af.pipeline
def text_hf(rows: Annotated[int, Field(gt=400)] = 1400, epochs: Annotated[int, Field(ge=1)] = 2,
            lr: Annotated[float, Field(gt=0)] = 3e-3):
    train, evaluation, test = split(make_sentences(rows=rows))
    return evaluate(predict(fit(train, evaluation, epochs=epochs, lr=lr), test))


if __name__ == "__main__":
    run = text_hf.run()
    print(run.status, run.output)
