"""SklearnTrainer: fit + scores + cv (matching scikit-learn's own cross_validate), predictors."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    return train_test_split(frame, test_size=0.25, random_state=0)


@pytest.mark.integration
@pytest.mark.parametrize("parallelize_cv", [False, True])
def test_cv_matches_cross_validate_and_scores_valid(ray_session, tmp_path, cancer, parallelize_cv):
    import ray
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import KFold, cross_validate

    from airflowdsl.air import RunConfig
    from airflowdsl.train.sklearn import SklearnTrainer

    train, valid = cancer
    folds = KFold(n_splits=4, shuffle=True, random_state=0)
    result = SklearnTrainer(
        estimator=RandomForestClassifier(n_estimators=10, random_state=0),
        datasets={"train": ray.data.from_pandas(train), "valid": ray.data.from_pandas(valid)},
        label_column="target", params={"max_depth": 4}, cv=folds,
        parallelize_cv=parallelize_cv, run_config=RunConfig(storage_path=str(tmp_path)),
    ).fit()

    expected = cross_validate(RandomForestClassifier(n_estimators=10, random_state=0, max_depth=4),
                              train.drop(columns="target"), train["target"], cv=folds)
    m = result.metrics
    assert m["cv/parallel"] == ("ray" if parallelize_cv else "local")
    assert m["cv/test_score"] == pytest.approx(list(expected["test_score"]))
    assert m["cv/test_score_mean"] == pytest.approx(expected["test_score"].mean())
    assert m["cv/test_score_std"] == pytest.approx(expected["test_score"].std())
    assert m["valid/test_score"] > 0.9 and m["fit_time"] > 0 and m["valid/score_time"] > 0
    assert len(result.metrics_dataframe) == 1 and result.checkpoint is not None


@pytest.mark.integration
def test_checkpoint_predictor_and_batch_predictor(ray_session, tmp_path, cancer):
    import ray
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from airflowdsl.air import RunConfig
    from airflowdsl.train.batch_predictor import BatchPredictor
    from airflowdsl.train.sklearn import SklearnCheckpoint, SklearnPredictor, SklearnTrainer

    train, valid = cancer
    result = SklearnTrainer(
        estimator=make_pipeline(StandardScaler(), LogisticRegression()),
        datasets={"train": ray.data.from_pandas(train)}, label_column="target",
        scoring="roc_auc", run_config=RunConfig(storage_path=str(tmp_path)),
    ).fit()
    estimator = SklearnCheckpoint.from_checkpoint(result.checkpoint).get_estimator()
    features = valid.drop(columns="target")
    expected = estimator.predict(features)

    # the label column is dropped by the predictor (the estimator knows its feature names)
    local = SklearnPredictor.from_checkpoint(result.checkpoint).predict(valid)
    assert list(local["predictions"]) == list(expected)
    again = SklearnCheckpoint.from_estimator(estimator)
    assert list(SklearnPredictor.from_checkpoint(again).predict(features)["predictions"]) == list(expected)

    scored = BatchPredictor.from_checkpoint(result.checkpoint, SklearnPredictor).predict(
        ray.data.from_pandas(valid), keep_columns=["target"]).to_pandas()
    assert sorted(scored["predictions"]) == sorted(expected)
    assert (scored["predictions"] == scored["target"]).mean() > 0.95


def test_constructor_checks():
    from sklearn.linear_model import LinearRegression

    from airflowdsl.air import ScalingConfig
    from airflowdsl.train.sklearn import SklearnTrainer

    with pytest.raises(KeyError, match="train"):
        SklearnTrainer(estimator=LinearRegression(), datasets={}, label_column="y")
    with pytest.raises(ValueError, match="not distributed"):
        SklearnTrainer(estimator=LinearRegression(), datasets={"train": object()},
                       label_column="y", scaling_config=ScalingConfig(num_workers=2))
