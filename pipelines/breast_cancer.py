"""Breast-cancer classification: scikit-learn's bundled data, end to end on Ray.

    ingest (load_data) -> split (train/valid) -> scale (fit on train) -> fit -> evaluate

Run it:      airflowdsl run pipelines/breast_cancer.py -p C=0.5
Draw it:     airflowdsl graph pipelines/breast_cancer.py -o dag.svg
Importing this module starts nothing (no Ray, no data loading).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

import airflowdsl as af

LABEL = "target"


@af.ingest
def load_data() -> af.Dataset:
    """The 569-row Wisconsin breast-cancer table (30 features + ``target``)."""
    import ray.data
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    return ray.data.from_pandas(frame)


@af.preprocess
def split(ds: af.Dataset, test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25,
          seed: int = 0) -> tuple[af.Dataset, af.Dataset]:
    """Shuffled train/validation split (deterministic for a given seed)."""
    train, valid = ds.train_test_split(test_size=test_size, shuffle=True, seed=seed)
    return train, valid


@af.preprocess
def scale(train: af.Dataset, valid: af.Dataset,
          label_column: str = LABEL) -> tuple[af.Dataset, af.Dataset]:
    """Standardise the features: fit on train only, apply to both."""
    import ray.data
    from sklearn.preprocessing import StandardScaler

    train_df, valid_df = train.to_pandas(), valid.to_pandas()
    features = [c for c in train_df.columns if c != label_column]
    scaler = StandardScaler().fit(train_df[features])
    train_df[features] = scaler.transform(train_df[features])
    valid_df[features] = scaler.transform(valid_df[features])
    return ray.data.from_pandas(train_df), ray.data.from_pandas(valid_df)


@af.train(num_cpus=1)
def fit(train: af.Dataset, C: Annotated[float, Field(gt=0)] = 1.0, max_iter: int = 1000,
        label_column: str = LABEL) -> af.Checkpoint:
    """A logistic regression; the checkpoint holds the model and its feature list."""
    from sklearn.linear_model import LogisticRegression

    df = train.to_pandas()
    features = [c for c in df.columns if c != label_column]
    model = LogisticRegression(C=C, max_iter=max_iter).fit(df[features], df[label_column])
    return af.Checkpoint.from_dict(
        {"model": model, "features": features, "label_column": label_column})


@af.predict
def evaluate(ckpt: af.Checkpoint, valid: af.Dataset) -> dict[str, float]:
    """Validation metrics of the checkpointed model."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    state = ckpt.to_dict()
    df = valid.to_pandas()
    y = df[state["label_column"]]
    proba = state["model"].predict_proba(df[state["features"]])[:, 1]
    pred = (proba >= 0.5).astype(int)
    return {"accuracy": float(accuracy_score(y, pred)), "f1": float(f1_score(y, pred)),
            "roc_auc": float(roc_auc_score(y, proba)), "n_valid": float(len(df))}


@af.pipeline
def breast_cancer(test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25,
                  C: Annotated[float, Field(gt=0)] = 1.0, seed: int = 0):
    train, valid = split(load_data(), test_size=test_size, seed=seed)
    train, valid = scale(train, valid)
    return evaluate(fit(train, C=C), valid)


if __name__ == "__main__":
    run = breast_cancer.run()
    print(run.status, run.output)
