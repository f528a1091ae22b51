"""A small, well-typed pipeline (no Ray needed to compile it)."""

from __future__ import annotations

import airflowdsl as af


@af.ingest
def load(n: int = 10) -> af.Dataset:
    import ray.data

    return ray.data.range(n)


@af.preprocess
def split(ds: af.Dataset, test_size: float = 0.25) -> tuple[af.Dataset, af.Dataset]:
    train, valid = ds.train_test_split(test_size=test_size)
    return train, valid


@af.train(num_cpus=1, retries=2, version="v1")
def fit(train: af.Dataset, valid: af.Dataset, max_depth: int = 3) -> af.Checkpoint:
    return af.Checkpoint.from_dict({"max_depth": max_depth, "rows": train.count()})


@af.predict
def score(ckpt: af.Checkpoint, ds: af.Dataset) -> dict[str, float]:
    return {"rows": float(ds.count())}


@af.pipeline
def cancer(max_depth: int = 3, test_size: float = 0.25):
    train, valid = split(load(), test_size=test_size)
    return score(fit(train, valid, max_depth=max_depth), valid)
