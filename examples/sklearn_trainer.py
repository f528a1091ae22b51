"""Breast-cancer classification with SklearnTrainer: one fit, a validation score, 5-fold cv.

    python examples/sklearn_trainer.py [--trees 100] [--folds 5] [--parallelize-cv {auto,on,off}]

A ``RandomForestClassifier`` is fitted (in this process) on 75% of scikit-learn's bundled
breast_cancer data, scored on the other 25% (``valid/test_score``) and cross-validated on
the training rows with a shuffled ``KFold``. The folds go to Ray tasks only when that
pays (``--parallelize-cv auto``: see ``airflowdsl/train/sklearn_parallel.py``); the
result says which way they ran. ``BatchPredictor`` + ``SklearnPredictor`` then score the
validation rows from the checkpoint. Starts a local Ray (``num_cpus=2``) when none is
running.
"""

from __future__ import annotations

import argparse
import tempfile

import ray
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import KFold, train_test_split

from airflowdsl.air import RunConfig
from airflowdsl.train.batch_predictor import BatchPredictor
from airflowdsl.train.sklearn import SklearnPredictor, SklearnTrainer

PARALLELIZE = {"auto": None, "on": True, "off": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--parallelize-cv", choices=sorted(PARALLELIZE), default="auto")
    args = parser.parse_args()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)

    frame = load_breast_cancer(as_frame=True).frame
    train, valid = train_test_split(frame, test_size=0.25, random_state=0)
    with tempfile.TemporaryDirectory(prefix="airflowdsl-example-") as storage:
        result = SklearnTrainer(
            estimator=RandomForestClassifier(random_state=0),
            datasets={"train": ray.data.from_pandas(train), "valid": ray.data.from_pandas(valid)},
            label_column="target",
            params={"n_estimators": args.trees},
            cv=KFold(n_splits=args.folds, shuffle=True, random_state=0),
            parallelize_cv=PARALLELIZE[args.parallelize_cv],
            run_config=RunConfig(name="sklearn_breast_cancer", storage_path=storage),
        ).fit()
        m = result.metrics
        print(f"fit {m['fit_time']:.2f}s  valid accuracy {m['valid/test_score']:.3f}")
        print(f"{args.folds}-fold cv ({m['cv/parallel']}): {m['cv/test_score_mean']:.3f} "
              f"+- {m['cv/test_score_std']:.3f}")

        scored = BatchPredictor.from_checkpoint(result.checkpoint, SklearnPredictor).predict(
            ray.data.from_pandas(valid), keep_columns=["target"]).to_pandas()
        accuracy = float((scored["predictions"] == scored["target"]).mean())
        print(f"BatchPredictor accuracy on {len(scored)} validation rows: {accuracy:.3f}")


if __name__ == "__main__":
    main()
