"""Predictors have fixed, documented ``predict``/``from_checkpoint`` signatures (as AIR):
a misspelled keyword raises ``TypeError`` naming the accepted ones instead of being
ignored; the accepted ones work. Real frameworks, tiny models, no Ray."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

from airflowdsl.train.lightgbm import LightGBMCheckpoint, LightGBMPredictor
from airflowdsl.train.sklearn import SklearnCheckpoint, SklearnPredictor
from airflowdsl.train.torch import TorchCheckpoint, TorchPredictor
from airflowdsl.train.xgboost import XGBoostCheckpoint, XGBoostPredictor

X = pd.DataFrame({"a": np.linspace(-1, 1, 40), "b": np.linspace(2, 0, 40)})
Y = (X["a"] > 0).astype(int)


def _torch() -> TorchPredictor:
    import torch

    torch.manual_seed(0)
    return TorchPredictor.from_checkpoint(TorchCheckpoint.from_model(torch.nn.Linear(2, 1)))


def _sklearn() -> SklearnPredictor:
    from sklearn.linear_model import LogisticRegression

    return SklearnPredictor.from_checkpoint(
        SklearnCheckpoint.from_estimator(LogisticRegression().fit(X, Y)))


def _xgboost() -> XGBoostPredictor:
    import xgboost

    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 1},
                            xgboost.DMatrix(X, label=Y), num_boost_round=2)
    return XGBoostPredictor.from_checkpoint(
        XGBoostCheckpoint.from_model(booster, feature_columns=["a", "b"]))


def _lightgbm() -> LightGBMPredictor:
    import lightgbm

    booster = lightgbm.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 2},
                             lightgbm.Dataset(X, label=Y), num_boost_round=2)
    return LightGBMPredictor.from_checkpoint(
        LightGBMCheckpoint.from_model(booster, feature_columns=["a", "b"]))


@pytest.mark.parametrize("build, good, bad, accepted", [
    (_torch, {"dtype": None}, {"dtpye": None}, "['dtype']"),
    (_sklearn, {"method": "predict_proba", "num_estimator_jobs": 1}, {"num_estimator_job": 1},
     "'num_estimator_jobs'"),
    (_xgboost, {"output_margin": True, "dmatrix_kwargs": {"nthread": 1}},
     {"output_margn": True}, "'dmatrix_kwargs'"),
    (_lightgbm, {"raw_score": True}, {"raw_scor": True}, "'raw_score'"),
])
def test_predict_takes_its_keywords_and_rejects_misspelled_ones(
        build: object, good: dict[str, object], bad: dict[str, object], accepted: str) -> None:
    predictor = build()  # type: ignore[operator]
    out = predictor.predict(X, **good)
    assert len(out) == len(X)
    with pytest.raises(TypeError, match=f"{next(iter(bad))}.*{accepted}".replace("[", r"\[")
                       .replace("]", r"\]")):
        predictor.predict(X, **bad)
    if not isinstance(predictor, SklearnPredictor):  # its estimator is known per instance
        with pytest.raises(TypeError):
            type(predictor).check_predict(bad)  # what BatchPredictor checks before scoring


def test_predict_shows_the_accepted_keywords_as_its_signature() -> None:
    assert list(inspect.signature(TorchPredictor.predict).parameters) == ["self", "data", "dtype"]
    sk = inspect.signature(SklearnPredictor.predict).parameters
    assert ["feature_columns", "num_estimator_jobs"] == list(sk)[2:4]
    xgb = inspect.signature(XGBoostPredictor.predict).parameters
    assert ["feature_columns", "dmatrix_kwargs", "predict_kwargs"] == list(xgb)[2:]
    assert "dtype" in (TorchPredictor.predict.__doc__ or "")


def test_from_checkpoint_rejects_unknown_keywords_naming_the_accepted_ones() -> None:
    import torch

    ckpt = TorchCheckpoint.from_model(torch.nn.Linear(2, 1))
    with pytest.raises(TypeError, match="use_gpuu"):
        TorchPredictor.from_checkpoint(ckpt, use_gpuu=True)
    with pytest.raises(TypeError, match=r"it takes \['model', 'use_gpu'\]"):
        TorchPredictor.check_from_checkpoint({"use_gpuu": True})
    for cls in (SklearnPredictor, XGBoostPredictor, LightGBMPredictor):
        with pytest.raises(TypeError, match="feature_columns"):
            cls.check_from_checkpoint({"feature_columns": ["a"]})  # predict's, not this


def test_feature_columns_select_what_the_model_sees() -> None:
    wide = X.assign(noise=np.arange(len(X)))
    expected = _xgboost().predict(X)["predictions"]
    np.testing.assert_allclose(
        _xgboost().predict(wide, feature_columns=["a", "b"])["predictions"], expected)
    np.testing.assert_allclose(
        _sklearn().predict(wide, feature_columns=["a", "b"])["predictions"],
        _sklearn().predict(X)["predictions"])


def test_batch_predictor_checks_predict_keywords_before_anything_runs() -> None:
    import torch

    from airflowdsl.train.batch_predictor import BatchPredictor

    batch = BatchPredictor.from_checkpoint(TorchCheckpoint.from_model(torch.nn.Linear(2, 1)),
                                           TorchPredictor)
    with pytest.raises(TypeError, match=r"dtpye.*takes \['dtype'\]"):
        batch.predict(X, dtpye="float64")  # raised before Ray is started or data is read
    with pytest.raises(TypeError, match="use_gpuu"):
        BatchPredictor.from_checkpoint(TorchCheckpoint.from_model(torch.nn.Linear(2, 1)),
                                       TorchPredictor, use_gpuu=True)
