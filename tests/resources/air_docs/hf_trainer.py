# Ray AIR documentation code, ported to airflowdsl.
# Source: ray-project/ray doc/source/ray-air/doc_code/hf_trainer.py
#         @ 39507c98ce61107bce44f57f9da46c2edc36379a (Ray 2.5/2.6 trainers page,
#         TransformersTrainer).
# Copyright Ray Team. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Imports changed: `from datasets import load_dataset` -> `from datasets import Dataset,
#   DatasetDict` (local data, below); ray.train.transformers.TransformersTrainer ->
#   airflowdsl.train.huggingface.HuggingFaceTrainer imported as TransformersTrainer
#   (AIR's 2.2-2.4 name for the same trainer); ray.air.config -> airflowdsl.air.config;
#   `from tokenizers import ...` added for the local tokenizer.
# Data (no downloads): load_dataset("wikitext", "wikitext-2-raw-v1") -> a DatasetDict of
#   generated sentences; AutoTokenizer.from_pretrained("sgugger/gpt2-like-tokenizer") -> a
#   word-level tokenizer over their vocabulary; AutoConfig.from_pretrained("gpt2") -> a
#   GPT2Config of the same family, tiny.
# Sizes: block_size 128 -> 16, num_workers 3 -> 2, num_train_epochs=1 added (default 3).
# Other lines changed (third-party): TrainingArguments evaluation_strategy= -> eval_strategy=
#   and no_cuda= -> use_cpu= (transformers 5 removed the old names).
# __hf_trainer_start__

# Based on
# huggingface/notebooks/examples/language_modeling_from_scratch.ipynb

# Hugging Face imports
from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, models, pre_tokenizers
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import ray
from airflowdsl.train.huggingface import HuggingFaceTrainer as TransformersTrainer
from airflowdsl.air.config import ScalingConfig


# If using GPUs, set this to True.
use_gpu = False

model_checkpoint = "gpt2"
tokenizer_checkpoint = "sgugger/gpt2-like-tokenizer"
block_size = 16

_words = "the a ray air model trains on data and predicts what comes next".split()
_lines = [" ".join(_words[(i + j) % len(_words)] for j in range(12)) for i in range(96)]
datasets = DatasetDict({"train": Dataset.from_dict({"text": _lines[:80]}),
                        "validation": Dataset.from_dict({"text": _lines[80:]})})
_vocab = {w: i for i, w in enumerate(["<unk>", *_words])}
_tok = Tokenizer(models.WordLevel(_vocab, unk_token="<unk>"))
_tok.pre_tokenizer = pre_tokenizers.Whitespace()
tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=_tok, unk_token="<unk>")


def tokenize_function(examples):
    return tokenizer(examples["text"])


tokenized_datasets = datasets.map(
    tokenize_function, batched=True, num_proc=1, remove_columns=["text"]
)


def group_texts(examples):
    # Concatenate all texts.
    concatenated_examples = {k: sum(examples[k], []) for k in examples.keys()}
    total_length = len(concatenated_examples[list(examples.keys())[0]])
    # We drop the small remainder, we could add padding if the model
    # supported it.
    # instead of this drop, you can customize this part to your needs.
    total_length = (total_length // block_size) * block_size
    # Split by chunks of max_len.
    result = {
        k: [t[i : i + block_size] for i in range(0, total_length, block_size)]
        for k, t in concatenated_examples.items()
    }
    result["labels"] = result["input_ids"].copy()
    return result


lm_datasets = tokenized_datasets.map(
    group_texts,
    batched=True,
    batch_size=1000,
    num_proc=1,
)
ray_train_ds = ray.data.from_huggingface(lm_datasets["train"])
ray_evaluation_ds = ray.data.from_huggingface(lm_datasets["validation"])


def trainer_init_per_worker(train_dataset, eval_dataset, **config):
    model_config = transformers.GPT2Config(
        vocab_size=len(_vocab), n_positions=block_size, n_embd=16, n_layer=1, n_head=2
    )
    model = AutoModelForCausalLM.from_config(model_config)
    args = transformers.TrainingArguments(
        output_dir=f"{model_checkpoint}-wikitext2",
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        learning_rate=2e-5,
        weight_decay=0.01,
        use_cpu=(not use_gpu),
        num_train_epochs=1,
    )
    return transformers.Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
    )


scaling_config = ScalingConfig(num_workers=2, use_gpu=use_gpu)
trainer = TransformersTrainer(
    trainer_init_per_worker=trainer_init_per_worker,
    scaling_config=scaling_config,
    datasets={"train": ray_train_ds, "evaluation": ray_evaluation_ds},
)
result = trainer.fit()

# __hf_trainer_end__
